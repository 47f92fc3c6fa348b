"""The portal's pages (HTML for browsers, mounted at the site's root): patients, the donate form, a donation's
status, sign-up and sign-in, my donations with their PDF receipts and yearly statements, my pledges, the
language switch, a patient's share kit, stopping updates. The JSON API is in the apps' urls.py modules."""

from django.contrib.auth import views as auth_views
from django.urls import path

from portal import documents, share, unsubscribe, web

urlpatterns = [
    path("", web.home, name="home"),
    path("patients/<str:code>/", web.patient_page, name="patient-page"),
    path("general-fund/", web.general_fund_page, name="general-fund"),
    # payment_start builds card return URLs with "donation-status-page": keep the name.
    path("donations/<str:reference>/", web.donation_status_page, name="donation-status-page"),
    path("donations/<str:reference>/panel/", web.donation_status_panel, name="donation-status-panel"),
    path("signup/", web.signup, name="signup"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="registration/login.html", next_page="my-donations-page"),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(next_page="home"), name="logout"),
    path("my/donations/", web.my_donations, name="my-donations-page"),
    path("my/donations/<str:reference>/receipt.pdf", documents.my_receipt, name="my-receipt-pdf"),
    path("my/statements/<int:year>.pdf", documents.my_statement, name="my-statement-pdf"),
    path("my/pledges/", web.my_pledges, name="my-pledges-page"),
    path("language/", web.language_switch, name="set-language"),
    # The share kit (portal/share.py): short link, card image, QR code.
    path("p/<str:code>", share.share_page, name="share-page"),
    path("p/<str:code>/", share.share_page),
    path("p/<str:code>/card.png", share.share_card, name="share-card"),
    path("p/<str:code>/qr.svg", share.share_qr_svg, name="share-qr"),
    path("unsubscribe/<str:token>/", unsubscribe.unsubscribe, name="unsubscribe"),
]
