"""Backups that count only once verified: dump, verify, restore, prune and DR drills.

Objects live in a bucket (``file:///path`` or ``gs://bucket/prefix``) under
``<kind>/<service>/<backup id>/``; a backup is complete only once its manifest exists, and its
verification results sit beside it as their own objects (buckets never overwrite).
"""
