"""Opening an ML Metadata store for reading: SQLite file, MySQL, or an MLMD gRPC server."""

import dataclasses
from pathlib import Path

from ml_metadata import errors, metadata_store
from ml_metadata.proto import metadata_store_pb2


class LineageError(Exception):
    """Something a user can act on: a missing store, an unknown id, ..."""


@dataclasses.dataclass(frozen=True)
class StoreAddress:
    """Where the store is. Exactly one of sqlite, mysql_host or grpc_host is set."""

    sqlite: Path | None = None
    mysql_host: str | None = None
    mysql_port: int = 3306
    mysql_database: str | None = None
    mysql_user: str | None = None
    mysql_password: str | None = dataclasses.field(default=None, repr=False)  # never shown
    grpc_host: str | None = None
    grpc_port: int = 8080

    @classmethod
    def of(cls, store) -> "StoreAddress":
        """The address of a pipeline.metadata.MetadataStore (an SQLite file or a database)."""
        if store.sqlite is not None:
            return cls(sqlite=store.sqlite)
        return cls(mysql_host=store.host, mysql_port=store.port, mysql_database=store.database,
                   mysql_user=store.user, mysql_password=store.password)

    def describe(self) -> str:
        if self.sqlite is not None:
            return f"SQLite store {self.sqlite}"
        if self.mysql_host:
            return f"MySQL store {self.mysql_user or ''}@{self.mysql_host}:{self.mysql_port}/{self.mysql_database}"
        return f"MLMD server {self.grpc_host}:{self.grpc_port}"


def open_store(address: StoreAddress) -> metadata_store.MetadataStore:
    """Opens the store without ever creating or migrating it (SQLite files are opened read-only)."""
    if address.grpc_host:
        client = metadata_store_pb2.MetadataStoreClientConfig(
            host=address.grpc_host, port=address.grpc_port, client_timeout_sec=30
        )
        return _connect(client, address)
    config = metadata_store_pb2.ConnectionConfig()
    if address.mysql_host:
        config.mysql.host = address.mysql_host
        config.mysql.port = address.mysql_port
        config.mysql.database = address.mysql_database or ""
        config.mysql.user = address.mysql_user or ""
        config.mysql.password = address.mysql_password or ""
        # Never create a database; a read-only MySQL user is still the way to be sure.
        config.mysql.skip_db_creation = True
    else:
        path = Path(address.sqlite) if address.sqlite else None
        if path is None or not path.is_file():
            raise LineageError(f"no ML Metadata store at {path}: run the pipeline first, or pass --metadata-store")
        if path.stat().st_size == 0:
            raise LineageError(f"{path} is empty: not an ML Metadata store")
        config.sqlite.filename_uri = str(path)
        config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return _connect(config, address)


def _connect(config, address: StoreAddress) -> metadata_store.MetadataStore:
    try:
        store = metadata_store.MetadataStore(config, enable_upgrade_migration=False)
        store.get_context_types()  # a gRPC client connects lazily: fail here, not mid-query
        return store
    # An older schema fails as FailedPrecondition (no migration allowed); a newer one as a
    # RuntimeError from the C++ layer ("MLMD database version N is greater than library version M").
    except (errors.FailedPreconditionError, RuntimeError) as error:
        if "database version" not in str(error).lower():
            raise LineageError(f"{address.describe()} is not an ML Metadata store: {_first_line(error)}") from None
        raise LineageError(
            f"{address.describe()} has an MLMD schema this ml-metadata version cannot read "
            f"(it never migrates a store): {_first_line(error)}"
        ) from None
    except (errors.UnavailableError, errors.DeadlineExceededError) as error:
        raise LineageError(f"cannot reach {address.describe()}: {_first_line(error)}") from None
    except errors.StatusError as error:
        raise LineageError(f"cannot read {address.describe()}: {_first_line(error)}") from None


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
