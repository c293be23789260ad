"""Discover, load, chunk and embed documents, and write the index; `rag` searches and asks it.

The lower layer: ingest never imports rag (see the README's Layout).
"""

from ingest.privacy import enforce_offline

# Here too, not only in rag: a script may import ingest alone, and none of its modules may load a
# library that could phone home before this.
enforce_offline()
