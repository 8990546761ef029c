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

PASSWORD_ENV = "MLMD_MYSQL_PASSWORD"
PASSWORD_FILE_ENV = "MLMD_MYSQL_PASSWORD_FILE"
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
        finally:
            connection.close()
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
