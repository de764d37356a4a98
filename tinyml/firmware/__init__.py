"""Boards, firmware project rendering and building."""
