"""The receipts app: numbered PDF receipts per completed donation and yearly statements per donor.

It sits above donor (it reads donations and the ledger) and below payments and the portal, which show its links;
donor's email relay gets the PDF from the hook ready() adds (donor.notifications.ATTACHMENT_SOURCES), never by
importing it.
"""

from django.apps import AppConfig


class ReceiptsConfig(AppConfig):
    name = "receipts"

    def ready(self) -> None:
        from donor.notifications import ATTACHMENT_SOURCES
        from receipts import checks  # noqa: F401 (registers the deploy check)
        from receipts.services import receipt_attachments

        if receipt_attachments not in ATTACHMENT_SOURCES:
            ATTACHMENT_SOURCES.append(receipt_attachments)  # the email receipt carries the PDF
