"""Telegram webhook Lambda."""
