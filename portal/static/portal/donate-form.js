// The donate form (portal/templates/_donate_form.html): presets and custom amount, the phone field for card payments, the
// day of the month for "Give monthly".
// A file, not an inline script: the Content-Security-Policy runs scripts from this site only (docs/security.md).
(function () {
  const form = document.getElementById("donate-form");
  const custom = document.getElementById("id_custom_amount");
  const phoneField = document.getElementById("phone-field");
  const phone = document.getElementById("id_phone_number");
  // A preset clears the custom amount, and typing a custom amount clears the preset.
  form.querySelectorAll("input[name=amount]").forEach(function (radio) {
    radio.addEventListener("change", function () { custom.value = ""; });
  });
  custom.addEventListener("input", function () {
    if (custom.value) form.querySelectorAll("input[name=amount]").forEach(function (r) { r.checked = false; });
  });
  function syncPhone() {
    const chosen = form.querySelector("input[name=method]:checked");
    const card = chosen && chosen.value.endsWith(":card");
    phoneField.hidden = !!card;
    phone.required = !card;
  }
  form.querySelectorAll("input[name=method]").forEach(function (r) { r.addEventListener("change", syncPhone); });
  syncPhone();
  // "Give monthly": the day of the month is asked only once it is ticked (without JavaScript it always shows).
  const monthly = document.getElementById("id_monthly");
  const dayField = document.getElementById("id_day_of_month").closest(".field");
  function syncMonthly() { dayField.hidden = !monthly.checked; }
  monthly.addEventListener("change", syncMonthly);
  syncMonthly();
  // After a failed submit, take the donor straight to the first field that needs attention.
  const invalid = form.querySelector("[aria-invalid=true]");
  if (invalid) { invalid.focus(); }
})();
