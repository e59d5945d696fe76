"""Perezvon: turns website visitors into phone calls.

The repository keeps its parts in top-level folders (``core/``, ``hookspecs/``,
``plugins/``, ``web/``); installed, they are the sub-packages of this one import
package (``setup.py`` maps them), so a wheel of Perezvon adds exactly one name,
``perezvon``, to site-packages. Plugins import :mod:`perezvon.api` and nothing else.
"""
