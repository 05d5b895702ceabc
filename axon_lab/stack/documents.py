"""``DocumentStore``: MongoDB through pymongo, or the embedded in-process stand-in (mongomock).

The embedded store is *not* MongoDB: it has no query planner, no indexes that change
timings, no network. mongomock scans every document for every query (272 ms for an
``_id $in`` over 16k documents, measured), where MongoDB walks its ``_id`` index; so
:meth:`DocumentStore.fetch` on the embedded store looks ids up in mongomock's own id map —
the one index every MongoDB collection has — and applies the projection itself. Every status and report that used it says ``kind == "mongomock
(embedded, not MongoDB)"``. Point ``AXON_MONGODB_URI`` at a real server for database numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from axon_lab.errors import BackendUnavailable
from axon_lab.instrument import measure
from axon_lab.redact import redact_text

#: The guide's projection: only what synthesis needs.
PROJECTION = {"content": 1, "metadata": 1, "confidence": 1, "tier": 1, "workspaceId": 1}
EMBEDDED_LABEL = "mongomock (embedded, not MongoDB)"


class DocumentStore:
    """The ``contexts`` collection; the base owns timing (``document_fetch`` spans)."""

    def __init__(
        self,
        client: Any,
        db: str = "axon",
        collection: str = "contexts",
        *,
        uri: str | None = None,
        embedded: bool = False,
    ) -> None:
        self.client = client
        self.db = client[db]
        self.coll = self.db[collection]
        self._uri = uri
        self.embedded = embedded
        self.kind = EMBEDDED_LABEL if embedded else "mongodb"

    @classmethod
    def embedded_store(cls, db: str = "axon") -> DocumentStore:
        """An in-process mongomock store (empty)."""
        import mongomock

        return cls(mongomock.MongoClient(), db, embedded=True)

    @classmethod
    def connect(
        cls,
        uri: str,
        db: str = "axon",
        *,
        timeout_ms: int = 5000,
        max_pool_size: int = 50,
        min_pool_size: int = 10,
    ) -> DocumentStore:
        """A real MongoDB via pymongo (pool settings as the guide recommends)."""
        import pymongo

        client: Any = pymongo.MongoClient(
            uri,
            serverSelectionTimeoutMS=timeout_ms,
            socketTimeoutMS=45_000,
            maxPoolSize=max_pool_size,
            minPoolSize=min_pool_size,
            maxIdleTimeMS=60_000,
        )
        return cls(client, db, uri=uri)

    @property
    def url(self) -> str:
        return "mongomock://in-process" if self.embedded else redact_text(self._uri or "")

    def fetch(self, ids: Sequence[int], *, projection: bool = True) -> list[dict[str, Any]]:
        """Documents with ``_id`` in ``ids`` (order of ``ids`` kept; missing ids dropped)."""
        with measure(
            "document_fetch",
            backend="mongomock" if self.embedded else "mongodb",
            projection=projection,
        ):
            try:
                if self.embedded:
                    return self._fetch_by_id_map(ids, projection)
                cursor = self.coll.find(
                    {"_id": {"$in": list(ids)}}, PROJECTION if projection else None
                )
                by_id = {d["_id"]: d for d in cursor}
            except Exception as exc:
                raise BackendUnavailable("mongodb", f"fetch failed: {exc}") from exc
        return [by_id[i] for i in ids if i in by_id]

    def _fetch_by_id_map(self, ids: Sequence[int], projection: bool) -> list[dict[str, Any]]:
        """Embedded store: the ``_id`` index emulated with mongomock's id map (copies returned)."""
        import copy

        store = self.coll._store  # mongomock's CollectionStore, keyed by _id
        out = []
        for i in ids:
            if i not in store:
                continue
            doc = store[i]
            if projection:
                out.append({k: copy.deepcopy(doc[k]) for k in ("_id", *PROJECTION) if k in doc})
            else:
                out.append(copy.deepcopy(doc))
        return out

    def find_contexts(
        self,
        workspace_id: str,
        tier: str | None = None,
        *,
        limit: int = 20,
        projection: bool = True,
    ) -> list[dict[str, Any]]:
        """The guide's query: a workspace's contexts (optionally one tier), by confidence desc."""
        flt: dict[str, Any] = {"workspaceId": workspace_id}
        if tier:
            flt["tier"] = tier
        with measure("document_query"):
            return list(
                self.coll.find(flt, PROJECTION if projection else None)
                .sort("confidence", -1)
                .limit(limit)
            )

    def insert_many(self, docs: Iterable[Mapping[str, Any]], *, batch_size: int = 5000) -> int:
        """Bulk insert (replacing the collection's content is the caller's choice)."""
        n = 0
        batch: list[Mapping[str, Any]] = []
        for d in docs:
            batch.append(d)
            if len(batch) >= batch_size:
                self.coll.insert_many(batch, ordered=False)
                n += len(batch)
                batch = []
        if batch:
            self.coll.insert_many(batch, ordered=False)
            n += len(batch)
        return n

    def ensure_indexes(self) -> None:
        """The guide's compound index for the contexts queries."""
        self.coll.create_index(
            [("workspaceId", 1), ("tier", 1), ("confidence", -1)],
            name="workspace_tier_confidence_idx",
        )

    def count(self) -> int:
        return int(self.coll.estimated_document_count())

    def workspaces(self) -> list[str]:
        return sorted(self.coll.distinct("workspaceId"))

    def health(self) -> bool:
        try:
            if self.embedded:
                self.coll.estimated_document_count()
            else:
                self.client.admin.command("ping")
            return True
        except Exception:
            return False

    def drop(self) -> None:
        self.coll.drop()

    def close(self) -> None:
        self.client.close()
