"""Helpers for testing programs that embed bargein."""
