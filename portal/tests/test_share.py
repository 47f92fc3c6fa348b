"""The share kit: `/p/<code>` is a plain server-rendered page whose Open Graph and Twitter tags carry absolute
URLs, the card they name is a 1200×630 PNG, the QR code decodes to the link, and a KES patient's page says how
to pay on M-Pesa's paybill without the site, in English and Swahili."""

import io
import re
from decimal import Decimal
from html.parser import HTMLParser
from xml.etree import ElementTree

import pytest
import zxingcpp
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone
from PIL import Image, ImageDraw

from patients.tests.factories import PatientFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("mpesa_settings")]
SITE = "https://donate.example.org"


@pytest.fixture(autouse=True)
def site(settings, mpesa_settings):
    settings.SITE_URL = SITE
    settings.PAYMENT_PROVIDERS["mpesa"] = {**settings.PAYMENT_PROVIDERS["mpesa"], "c2b_shortcode": "600984"}
    cache.clear()


class Meta(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, str] = {}
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        found = dict(attrs)
        if tag == "meta" and ("property" in found or "name" in found):
            self.tags[found.get("property") or found["name"]] = found.get("content", "")
        self.scripts += tag == "script"


def meta_of(html: str) -> Meta:
    parser = Meta()
    parser.feed(html)
    return parser


def test_the_short_link_has_absolute_open_graph_and_twitter_tags_and_no_script():
    patient = PatientFactory(code="PAT-0042", name="Amina Juma", currency="KES", funding_goal=Decimal("50000"))
    answer = Client().get("/p/PAT-0042")
    assert answer.status_code == 200
    page = meta_of(answer.content.decode())
    url = f"{SITE}/p/{patient.code}"
    assert page.tags["og:url"] == url
    assert page.tags["og:image"] == page.tags["twitter:image"] == f"{url}/card.png"
    assert page.tags["og:title"] == "Help Amina get treatment" == page.tags["twitter:title"]
    assert page.tags["og:description"].startswith("KSh 0 of KSh 50,000 raised")
    assert page.tags["twitter:card"] == "summary_large_image"
    assert (page.tags["og:image:width"], page.tags["og:image:height"]) == ("1200", "630")
    assert all(page.tags[name].startswith("https://") for name in ("og:url", "og:image", "twitter:image"))
    assert page.scripts == 0


def test_a_kes_patient_shows_the_paybill_in_english_and_swahili():
    PatientFactory(code="PAT-0043", currency="KES")
    html = Client().get("/p/PAT-0043").content.decode()
    assert "Lipa na M-Pesa → Paybill 600984 → Account PAT-0043 → the amount → your PIN" in html
    assert re.search(r'<p lang="sw"><strong>Lipa na M-Pesa → Paybill 600984 → Akaunti PAT-0043', html)


def test_a_tzs_patient_has_no_paybill_way():
    PatientFactory(code="PAT-0044", currency="TZS")
    assert "Paybill" not in Client().get("/p/PAT-0044").content.decode()


def test_the_card_is_a_1200_by_630_png_drawn_once_per_content():
    patient = PatientFactory(code="PAT-0045", name="Neema", treatment="Hip surgery")
    first = Client().get(f"/p/{patient.code}/card.png")
    assert first.status_code == 200 and first["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(first.content))
    assert image.format == "PNG" and image.size == (1200, 630)
    again = Client().get(f"/p/{patient.code}/card.png", headers={"If-None-Match": first["ETag"]})
    assert again.status_code == 304
    patient.funding_received = Decimal("5000")
    patient.save()
    assert Client().get(f"/p/{patient.code}/card.png")["ETag"] != first["ETag"]  # new figures: a new card


def svg_to_image(svg: bytes) -> Image.Image:
    """Draw the served SVG's own path (segno writes each dark run as `h<length>` on a row, moving with `M`/`m`)
    into a bitmap, so the QR decoder reads what the browser would, not a second rendering."""
    root = ElementTree.fromstring(svg)  # noqa: S314 (our own answer, in a test)
    width, height = int(root.get("width")), int(root.get("height"))
    path = root.find("{http://www.w3.org/2000/svg}path")
    scale = int(re.fullmatch(r"scale\((\d+)\)", path.get("transform")).group(1))
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    x = y = 0.0
    for command, a, b in re.findall(r"([Mmh])(-?[\d.]+)(?: (-?[\d.]+))?", path.get("d")):
        if command == "M":
            x, y = float(a), float(b)
        elif command == "m":
            x, y = x + float(a), y + float(b)
        else:  # a dark run of `a` modules on the row whose middle is y
            top = int(y - 0.5) * scale
            draw.rectangle((int(x) * scale, top, int(x + float(a)) * scale - 1, top + scale - 1), fill=0)
            x += float(a)
    return image


def test_the_qr_code_decodes_to_the_link():
    patient = PatientFactory(code="PAT-0046")
    answer = Client().get(f"/p/{patient.code}/qr.svg")
    assert answer.status_code == 200 and answer["Content-Type"] == "image/svg+xml"
    decoded = zxingcpp.read_barcodes(svg_to_image(answer.content))
    assert [code.text for code in decoded] == [f"{SITE}/p/PAT-0046"]
    assert decoded[0].format == zxingcpp.BarcodeFormat.QRCode


def test_an_unknown_or_unpublished_code_is_404():
    PatientFactory(code="PAT-0047", published=False)
    for path in ("/p/PAT-0047", "/p/NOPE/card.png", "/p/NOPE/qr.svg"):
        assert Client().get(path).status_code == 404


def test_a_patient_code_is_at_most_12_characters():
    patient = PatientFactory.build(code="PAT-000000001")  # 13: longer than a paybill account or STK reference
    with pytest.raises(ValidationError, match="at most 12"):
        patient.full_clean()


def test_approved_updates_appear_on_the_patients_pages_and_others_do_not():
    from patients.models import TreatmentUpdate
    from payments.tests.factories import staff_user

    patient = PatientFactory(code="PAT-0048")
    writer = staff_user("writer", "patients.add_treatmentupdate")
    TreatmentUpdate.objects.create(patient=patient, kind="final", text="Amina walks again.", written_by=writer,
                                   status="approved", decided_at=timezone.now())  # fmt: skip
    TreatmentUpdate.objects.create(patient=patient, kind="delay", text="Not checked yet.", written_by=writer)
    for path in ("/patients/PAT-0048/", "/p/PAT-0048"):
        html = Client().get(path).content.decode()
        assert "Amina walks again." in html and "Treatment is complete" in html
        assert "Not checked yet." not in html
