"""The syncer: runs a vcluster's pods in its host namespace and reports their status back.

One process per vcluster (`python manage.py syncer`, or `python -m syncer` without
Django). See docs/syncer.md.
"""
