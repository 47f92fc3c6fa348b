"""Give a staff user a TOTP authenticator (the admin's second factor for payout and refund approvers).

    python manage.py otp_enroll <username>            # a new confirmed device; prints the otpauth:// URI and key
    python manage.py otp_enroll <username> --reset    # removes the user's devices first (a lost phone)
    python manage.py otp_enroll <username> --remove   # removes them and enrols nothing

The key is printed once, here: add it to the user's authenticator app (paste the URI into a QR generator the
operator trusts, or type the base32 key), then clear the terminal. docs/security.md.
"""

from base64 import b32encode

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.second_factor import needs_second_factor


class Command(BaseCommand):
    help = "Enrol (or reset, or remove) a staff user's TOTP authenticator and print its otpauth:// URI and key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="authenticator", help="a label for the device (default: authenticator)")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--reset", action="store_true", help="remove the user's TOTP devices, then enrol a new one")
        mode.add_argument("--remove", action="store_true", help="remove the user's TOTP devices and enrol nothing")

    def handle(self, *args, username: str, name: str, reset: bool, remove: bool, **options) -> None:
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist as exc:
            raise CommandError(f"No user {username!r}.") from exc

        with transaction.atomic():
            existing = TOTPDevice.objects.select_for_update().filter(user=user)
            if remove or reset:
                count, _ = existing.delete()
                self.stdout.write(f"Removed {count} TOTP device(s) of {username}: their codes no longer work.")
                if remove:
                    if needs_second_factor(user):
                        self.stdout.write(
                            f"{username} approves payouts or refunds and cannot use the admin until enrolled again."
                        )
                    return
            elif existing.exists():
                raise CommandError(
                    f"{username} already has a TOTP device. Use --reset to replace it (the old one stops working)."
                )
            device = TOTPDevice.objects.create(user=user, name=name, confirmed=True)

        secret = b32encode(device.bin_key).decode()
        self.stdout.write(self.style.SUCCESS(f"Enrolled a TOTP device for {username}."))
        self.stdout.write(f"otpauth URI: {device.config_url}")
        self.stdout.write(f"Secret key (base32, for typing in): {secret}")
        self.stdout.write(
            "6 digits, every 30 seconds (SHA1). Add it to the authenticator app now; it is not shown again."
        )
        if not user.is_staff:
            self.stdout.write(self.style.WARNING(f"{username} is not staff: the admin will not let them in anyway."))
        elif not needs_second_factor(user):
            self.stdout.write(
                f"Note: {username} approves neither payouts nor refunds, so the admin does not ask for the code yet."
            )
