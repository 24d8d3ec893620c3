"""Renderers: tables and figures made from records only."""
