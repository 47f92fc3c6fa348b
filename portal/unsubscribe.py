"""Stopping treatment updates by the signed link in each message, without signing in.

GET shows what the link stops and one button (a link scanner that follows links must not unsubscribe anyone);
POST unsubscribes. The mail client's one-click button (RFC 8058: `List-Unsubscribe-Post: List-Unsubscribe=One-Click`)
POSTs the same URL with that body. The signed token is the authority, so the POST needs no CSRF cookie.
"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from donor.updates import notice_unsubscribe, unsubscribe_notice

CHANNEL_WORDS = {"email": gettext_lazy("email"), "telegram": "Telegram", "sms": "SMS"}


@csrf_exempt  # the signed token in the path is what authorises it (a mail client's one-click POST has no cookie)
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    notice = unsubscribe_notice(token=token)
    if notice is None:
        return render(request, "unsubscribe.html", {"invalid": True}, status=404)
    done = False
    if request.method == "POST":
        source = "one-click" if request.POST.get("List-Unsubscribe") == "One-Click" else "link"
        notice_unsubscribe(notice=notice, source=source)
        done = True
    return render(
        request, "unsubscribe.html", {"channel": CHANNEL_WORDS.get(notice.channel, notice.channel), "done": done}
    )
