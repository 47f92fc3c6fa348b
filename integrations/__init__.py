"""Thin clients for services outside the payment providers (Telegram), shared by every app."""
