"""The share kit of a patient: `/p/<code>` (a short server-rendered page with absolute Open Graph and Twitter
tags, so a link pasted in WhatsApp, Facebook or X shows a card), the 1200×630 card image those tags name
(`/p/<code>/card.png`, drawn with Pillow in DejaVu fonts so Swahili renders, cached per content), a QR code of
the link (`/p/<code>/qr.svg`, segno), and how to pay without the site on the rails that take paybill payments.
No JavaScript: everything is in the HTML.
"""

import hashlib
import io
from pathlib import Path

import segno
from django.conf import settings
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET
from PIL import Image, ImageDraw, ImageFont

from donor.sms import money_for_people
from patients.models import Patient
from patients.selectors import patient_get_published
from patients.updates import treatment_updates_published
from payments.transparency import PaybillWay, patient_money_trail, paybill_ways

CARD_SIZE = (1200, 630)  # what Open Graph and X's summary_large_image show without cropping
CARD_CACHE_SECONDS = 24 * 3600
BRAND, BRAND_DARK, LIGHT = (11, 110, 79), (8, 82, 59), (215, 238, 228)


def share_url(patient: Patient) -> str:
    """The short public link of a patient, absolute (what the QR code and og:url carry)."""
    return f"{settings.SITE_URL}/p/{patient.code}"


def _patient(code: str) -> Patient:
    patient = patient_get_published(code=code)
    if patient is None:
        raise Http404("No such patient")
    return patient


def paybill_lines(ways: list[PaybillWay]) -> list[dict[str, str]]:
    """Each paybill way in English and in Swahili (both shown: a shared link reaches readers of either)."""
    lines = []
    for way in ways:
        texts = {}
        for language in ("en", "sw"):
            with translation.override(language):
                texts[language] = _(
                    "Lipa na %(rail)s → Paybill %(paybill)s → Account %(account)s → the amount → your PIN"
                ) % {"rail": way.rail, "paybill": way.paybill, "account": way.account}
        lines.append(texts)
    return lines


def _description(patient: Patient) -> str:
    raised = money_for_people(patient.funding_received, patient.currency)
    goal = money_for_people(patient.funding_goal, patient.currency)
    story = " ".join(patient.story.split())
    lead = _("%(raised)s of %(goal)s raised for %(name)s's treatment.") % {
        "raised": raised, "goal": goal, "name": patient.first_name}  # fmt: skip
    return f"{lead} {story[:160]}{'…' if len(story) > 160 else ''}".strip()


@require_GET
def share_page(request: HttpRequest, code: str) -> HttpResponse:
    patient = _patient(code)
    url = share_url(patient)
    context = {
        "patient": patient,
        "share_url": url,
        "card_url": f"{url}/card.png",
        "qr_url": f"{url}/qr.svg",
        "og_title": _("Help %(name)s get treatment") % {"name": patient.first_name},
        "og_description": _description(patient),
        "paybill": paybill_lines(paybill_ways(patient=patient)),
        "trail": patient_money_trail(patient=patient),
        "updates": treatment_updates_published(patient=patient)[:3],
        "raised": money_for_people(patient.funding_received, patient.currency),
        "goal": money_for_people(patient.funding_goal, patient.currency),
    }
    return render(request, "share.html", context)


# --- The card image -----------------------------------------------------------------------------------------


def _font(bold: bool, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    path = Path(settings.SHARE_CARD_FONT_DIR) / name
    try:
        return ImageFont.truetype(str(path), size)
    except OSError:  # fonts-dejavu-core missing (make installs it): Pillow's own font, still every glyph of Latin
        return ImageFont.load_default(size)


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> str:
    """The text cut (with "…") to fit `width` pixels on one line."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def card_png(patient: Patient) -> bytes:
    """The 1200×630 card: who, what for, how far along, the link."""
    width, height = CARD_SIZE
    image = Image.new("RGB", CARD_SIZE, BRAND)
    draw = ImageDraw.Draw(image)
    margin = 72
    draw.rectangle((0, height - 120, width, height), fill=BRAND_DARK)
    draw.text((margin, 70), _fit(draw, _("Help %(name)s") % {"name": patient.first_name}, _font(True, 84),
                                 width - 2 * margin), font=_font(True, 84), fill="white")  # fmt: skip
    subtitle = patient.treatment or patient.condition
    if subtitle:
        draw.text((margin, 190), _fit(draw, subtitle, _font(False, 44), width - 2 * margin), font=_font(False, 44),
                  fill=LIGHT)  # fmt: skip
    bar_top, bar_height = 300, 36
    draw.rounded_rectangle((margin, bar_top, width - margin, bar_top + bar_height), radius=18, fill=LIGHT)
    filled = int((width - 2 * margin) * patient.funding_percent / 100)
    if filled:
        draw.rounded_rectangle((margin, bar_top, margin + max(filled, bar_height), bar_top + bar_height), radius=18,
                               fill="white")  # fmt: skip
    raised = _("%(raised)s of %(goal)s raised") % {
        "raised": money_for_people(patient.funding_received, patient.currency),
        "goal": money_for_people(patient.funding_goal, patient.currency),
    }
    draw.text((margin, 370), _fit(draw, raised, _font(True, 48), width - 2 * margin), font=_font(True, 48),
              fill="white")  # fmt: skip
    link = share_url(patient).split("//", 1)[-1]
    draw.text((margin, height - 90), _fit(draw, link, _font(False, 40), width - 2 * margin), font=_font(False, 40),
              fill="white")  # fmt: skip
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


@require_GET
def share_card(request: HttpRequest, code: str) -> HttpResponse:
    """The card, drawn once per content and language and kept in the cache (a shared link is fetched by every
    chat app that shows it); the ETag lets them keep it too."""
    patient = _patient(code)
    facts = [patient.code, patient.first_name, patient.treatment or patient.condition, patient.currency,
             str(patient.funding_received), str(patient.funding_goal), translation.get_language() or "",
             settings.SITE_URL]  # fmt: skip
    digest = hashlib.sha256("|".join(facts).encode()).hexdigest()[:32]
    etag = f'"{digest}"'
    if request.headers.get("If-None-Match") == etag:
        return HttpResponse(status=304, headers={"ETag": etag})
    key = f"share-card:{digest}"
    png = cache.get(key)
    if png is None:
        png = card_png(patient)
        cache.set(key, png, CARD_CACHE_SECONDS)
    return HttpResponse(png, content_type="image/png", headers={"ETag": etag, "Cache-Control": "public, max-age=3600"})


def share_qr(patient: Patient) -> segno.QRCode:
    """The QR code of the patient's short link (error correction M: readable from a printed poster)."""
    return segno.make(share_url(patient), error="m")


@require_GET
def share_qr_svg(request: HttpRequest, code: str) -> HttpResponse:
    svg = io.BytesIO()
    share_qr(_patient(code)).save(svg, kind="svg", scale=8, border=2, xmldecl=True, title="QR")
    return HttpResponse(svg.getvalue(), content_type="image/svg+xml", headers={"Cache-Control": "public, max-age=3600"})
