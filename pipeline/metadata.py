"""Which ML Metadata store a run writes to and the lineage and report commands read: one spelling.

    --metadata-store PATH                          an SQLite file (default: <output dir>/metadata.sqlite)
    --metadata-store mysql://USER@HOST[:PORT]/DB   a MySQL (or MariaDB) server a team shares

The password of a database store never travels in a URI, on a command line, in a log or in
MLMD: it comes from the environment (MLMD_MYSQL_PASSWORD) or from a file that only its owner
can read (--metadata-password-file, or MLMD_MYSQL_PASSWORD_FILE). `check()` asks the server
before anything runs, so an unreachable server, a wrong password, a missing database or a user
without write rights each get one line that names host, user and database.
"""

import contextlib
import dataclasses
import os
import stat
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pipeline.config import ConfigError

# The environment variables the password (or the file holding it) is read from.
PASSWORD_ENV, PASSWORD_FILE_ENV = ("MLMD_MYSQL_PASSWORD", "MLMD_MYSQL_PASSWORD_FILE")
MYSQL_SCHEME = "mysql"
DEFAULT_MYSQL_PORT = 3306
CONNECT_TIMEOUT_S = 10


class StoreError(RuntimeError):
    """The store cannot be used as asked; the message names it (never the password)."""


@dataclasses.dataclass(frozen=True)
class MetadataStore:
    """An MLMD store: an SQLite file, or a database on a MySQL-compatible server."""

    sqlite: Path | None = None
    host: str | None = None
    port: int = DEFAULT_MYSQL_PORT
    database: str | None = None
    user: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)  # never shown

    @property
    def is_server(self) -> bool:
        return self.host is not None

    def describe(self) -> str:
        """Where the store is, for people: no password, ever."""
        if self.sqlite is not None:
            return str(self.sqlite)
        return f"mysql://{self.user}@{self.host}:{self.port}/{self.database}"

    def __str__(self) -> str:
        return self.describe()

    def connection_config(self, read_only: bool = False):
        """MLMD's ConnectionConfig. Read-only: the SQLite file opened read-only, and no attempt to
        create the database (which a SELECT-only user may not do)."""
        from ml_metadata.proto import metadata_store_pb2 as mlmd

        config = mlmd.ConnectionConfig()
        if self.sqlite is not None:
            config.sqlite.filename_uri = str(self.sqlite)
            config.sqlite.connection_mode = (
                mlmd.SqliteMetadataSourceConfig.READONLY if read_only else mlmd.SqliteMetadataSourceConfig.READWRITE_OPENCREATE)
            return config
        config.mysql.host = self.host
        config.mysql.port = self.port
        config.mysql.database = self.database
        config.mysql.user = self.user
        config.mysql.password = self.password or ""
        config.mysql.skip_db_creation = True  # the database is the team's: created by its admin, never by a run
        return config

    def check(self, write: bool) -> None:
        """Raises StoreError unless the server answers, takes the credentials, has the database and
        (`write`) lets this user write to it. Nothing to check for an SQLite file."""
        if not self.is_server:
            return
        import pymysql

        where = self.describe()
        try:
            connection = pymysql.connect(host=self.host, port=self.port, user=self.user, password=self.password or "",
                                         database=self.database, connect_timeout=CONNECT_TIMEOUT_S)
        except pymysql.err.OperationalError as error:
            code = error.args[0] if error.args else None
            reason = {
                1045: f"access denied for user {self.user!r} (wrong password, or no password in ${PASSWORD_ENV})",
                # A server answers 1044 for a database that does not exist when the user may see
                # only its own: the two cannot be told apart from here.
                1044: f"no database {self.database!r} that user {self.user!r} may use (missing, or no rights "
                      "on it; an admin creates it once)",
                1049: f"no database {self.database!r} on the server (an admin creates it once)",
            }.get(code, f"cannot reach the server ({_first_line(error)})")
            raise StoreError(f"metadata store {where}: {reason}") from None
        try:
            with connection.cursor() as cursor:
                cursor.execute("SHOW GRANTS FOR CURRENT_USER()")
                grants = " ".join(row[0] for row in cursor.fetchall()).upper()
                cursor.execute("SHOW VARIABLES LIKE 'innodb_snapshot_isolation'")
                snapshot_isolation = (cursor.fetchone() or (None, "OFF"))[1].upper() in ("ON", "1")
        finally:
            connection.close()
        if write and snapshot_isolation:
            # MariaDB >= 11.6 by default fails a transaction that reads a row another has changed
            # ("Record has changed since last read"), and MLMD never retries: two runs at once
            # then lose executions and TFX skips the nodes that needed them.
            raise StoreError(f"metadata store {where}: the server has innodb_snapshot_isolation=ON, under which "
                             "concurrent runs lose MLMD writes; an admin sets it OFF once "
                             "(SET GLOBAL innodb_snapshot_isolation=OFF, and in the server's config)")
        if write and not any(word in grants for word in ("ALL PRIVILEGES", "INSERT")):
            raise StoreError(f"metadata store {where}: user {self.user!r} may only read it; a run needs a user "
                             "with write rights (INSERT, UPDATE, CREATE on the database)")


    def open(self):
        """An ml_metadata MetadataStore for writing, its schema created when the database is new.

        Two runs that start on a new database at once would both create MLMD's tables and one
        would find the other's half made ("Table 'mlmd.Attribution' doesn't exist"): on a server
        the schema is created under the server's named lock, so the second waits for the first.
        """
        from ml_metadata import metadata_store

        try:
            if not self.is_server:
                return metadata_store.MetadataStore(self.connection_config())
            with self._server_lock("tfx_taxi_mlmd_schema"):
                return metadata_store.MetadataStore(self.connection_config())
        except StoreError:
            raise
        except Exception as error:  # MLMD's C++ layer raises RuntimeError and its own StatusErrors
            raise StoreError(f"metadata store {self.describe()}: {_first_line(error)}") from None

    @contextlib.contextmanager
    def _server_lock(self, name: str, timeout_s: int = 120):
        import pymysql

        connection = pymysql.connect(host=self.host, port=self.port, user=self.user, password=self.password or "",
                                     database=self.database, connect_timeout=CONNECT_TIMEOUT_S)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT GET_LOCK(%s, %s)", (name, timeout_s))
                if cursor.fetchone()[0] != 1:
                    raise StoreError(f"metadata store {self.describe()}: another run held the lock {name!r} "
                                     f"for {timeout_s} s")
            yield
        finally:
            connection.close()  # releases the lock


def parse(value: str | Path | None, default: Path, password_file: str | Path | None = None) -> MetadataStore:
    """The --metadata-store option's store (its default: `default`, an SQLite file); ConfigError if wrong."""
    text = str(value) if value is not None else None
    if text is None or "://" not in text:
        path = Path(text).expanduser().absolute() if text else Path(default)
        if path.exists() and not path.is_file():
            raise ConfigError("metadata_store", f"{path} is not a file")
        return MetadataStore(sqlite=path)
    parts = urlsplit(text)
    if parts.scheme != MYSQL_SCHEME:
        raise ConfigError("metadata_store", f"expects a file or mysql://USER@HOST[:PORT]/DATABASE, got {parts.scheme}://")
    if parts.password is not None:
        raise ConfigError("metadata_store", f"no password in the URI: give it in ${PASSWORD_ENV} or --metadata-password-file")
    database = parts.path.strip("/")
    if not parts.hostname or not parts.username or not database or "/" in database:
        raise ConfigError("metadata_store", "expects mysql://USER@HOST[:PORT]/DATABASE")
    try:
        port = parts.port or DEFAULT_MYSQL_PORT
    except ValueError:
        raise ConfigError("metadata_store", f"not a port number in {text!r}") from None
    return MetadataStore(host=parts.hostname, port=port, database=database, user=unquote(parts.username),
                         password=_password(password_file))


def _password(password_file: str | Path | None) -> str | None:
    password_file = password_file or os.environ.get(PASSWORD_FILE_ENV)
    if not password_file:
        return os.environ.get(PASSWORD_ENV)
    path = Path(password_file).expanduser()
    try:
        mode = path.stat().st_mode
    except OSError as error:
        raise ConfigError("metadata_password_file", f"cannot read {path}: {error.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError("metadata_password_file",
                          f"{path} can be read by others (mode {stat.filemode(mode)}): chmod 600 it")
    return path.read_text().rstrip("\r\n")


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def copy_store(source: MetadataStore, target: MetadataStore) -> dict[str, int]:
    """See _copy; raises StoreError (one line) when either store refuses."""
    try:
        return _copy(source, target)
    except StoreError:
        raise
    except Exception as error:  # MLMD's StatusErrors and the C++ layer's RuntimeErrors
        raise StoreError(f"copying {source} into {target}: {type(error).__name__}: {_first_line(error)}") from None


def _copy(source: MetadataStore, target: MetadataStore) -> dict[str, int]:
    """Copies every type, artifact, execution, context, event, attribution, association and
    parent context of `source` into `target` through the MLMD API; returns what was copied.

    Ids are new in the target (mapped as they are copied); MLMD sets creation and update times
    itself, so the copies carry the time of the copy, and the originals' times are kept as the
    custom properties `copied_create_time_ms` and `copied_update_time_ms`. The target should be
    empty: a store already holding runs would get a second copy of any it shares with the source.
    """
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as mlmd

    src = metadata_store.MetadataStore(source.connection_config(read_only=True), enable_upgrade_migration=False)
    dst = target.open()
    type_ids: dict[str, dict[int, int]] = {}
    for kind, get, put in (("artifact", src.get_artifact_types, dst.put_artifact_type),
                           ("execution", src.get_execution_types, dst.put_execution_type),
                           ("context", src.get_context_types, dst.put_context_type)):
        type_ids[kind] = {}
        for node_type in get():
            old = node_type.id
            node_type.ClearField("id")
            type_ids[kind][old] = put(node_type, can_add_fields=True)

    def copied(nodes, kind):
        out = []
        for node in nodes:
            node = type(node).FromString(node.SerializeToString())
            node.type_id = type_ids[kind][node.type_id]
            # As doubles: MLMD's MySQL schema keeps int_value in a 32-bit INT, too small for epoch ms.
            node.custom_properties["copied_create_time_ms"].double_value = node.create_time_since_epoch
            node.custom_properties["copied_update_time_ms"].double_value = node.last_update_time_since_epoch
            for field in ("id", "create_time_since_epoch", "last_update_time_since_epoch", "type"):
                node.ClearField(field)
            out.append(node)
        return out

    artifacts, executions, contexts = src.get_artifacts(), src.get_executions(), src.get_contexts()
    artifact_ids = dict(zip((a.id for a in artifacts), dst.put_artifacts(copied(artifacts, "artifact"))))
    execution_ids = dict(zip((e.id for e in executions), dst.put_executions(copied(executions, "execution"))))
    context_ids = dict(zip((c.id for c in contexts), dst.put_contexts(copied(contexts, "context"))))
    events = src.get_events_by_execution_ids(list(execution_ids))
    for event in events:
        event.artifact_id, event.execution_id = artifact_ids[event.artifact_id], execution_ids[event.execution_id]
        event.ClearField("milliseconds_since_epoch")
    if events:
        dst.put_events(events)
    attributions, associations, parents = [], [], []
    for old, new in context_ids.items():
        attributions += [mlmd.Attribution(artifact_id=artifact_ids[a.id], context_id=new)
                         for a in src.get_artifacts_by_context(old)]
        associations += [mlmd.Association(execution_id=execution_ids[e.id], context_id=new)
                         for e in src.get_executions_by_context(old)]
        parents += [mlmd.ParentContext(child_id=new, parent_id=context_ids[p.id])
                    for p in src.get_parent_contexts_by_context(old)]
    dst.put_attributions_and_associations(attributions, associations)
    if parents:
        dst.put_parent_contexts(parents)
    return {"types": sum(map(len, type_ids.values())), "artifacts": len(artifacts), "executions": len(executions),
            "contexts": len(contexts), "events": len(events)}
