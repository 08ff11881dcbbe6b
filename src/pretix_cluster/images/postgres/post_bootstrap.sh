#!/bin/bash
# Patroni bootstrap.post_bootstrap hook: runs once, on the node that initdb'd the
# cluster, right after bootstrap, as postgres. Patroni passes a libpq connection
# URL for the superuser as the last argument and sets PGPASSFILE.
#
# Creates the application role and database:
#   role     pretix: LOGIN, NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
#   database pretix, owned by pretix; CONNECT revoked from PUBLIC
# Password: read from the Docker secret /run/secrets/pg_pretix_password
# (override the path with PG_PRETIX_PASSWORD_FILE). It never appears on a command
# line, in the environment or in the server log: a SCRAM-SHA-256 verifier is
# computed here and only the verifier reaches psql, via stdin (bash's builtin
# printf), as a psql variable quoted with :'var'.
# Idempotent (re-running only re-sets the password and ownership).
set -euo pipefail

connstring="${!#:-}"
[ "$#" -ge 1 ] || { echo "post_bootstrap: usage: $0 <connection-url>" >&2; exit 2; }

pw_file="${PG_PRETIX_PASSWORD_FILE:-/run/secrets/pg_pretix_password}"
db_user="${PRETIX_DB_USER:-pretix}"
db_name="${PRETIX_DB_NAME:-pretix}"

for ident in "$db_user" "$db_name"; do
    [[ "$ident" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || { echo "post_bootstrap: invalid identifier '$ident'" >&2; exit 2; }
done
[ -r "$pw_file" ] || { echo "post_bootstrap: cannot read $pw_file as uid $(id -u)" >&2; exit 1; }

# The secret holds urlsafe-base64 characters, possibly followed by one newline.
verifier="$(/usr/bin/python3 - "$pw_file" <<'PY'
import base64, hashlib, hmac, os, re, sys

with open(sys.argv[1], "rb") as f:
    pw = f.read()
if pw.endswith(b"\n"):
    pw = pw[:-1]
if not re.fullmatch(rb"[A-Za-z0-9_=-]{16,}", pw):
    sys.exit("post_bootstrap: password must be >= 16 urlsafe-base64 characters")
# RFC 5802 / 7677, as PostgreSQL stores it (ASCII passwords need no SASLprep).
iterations, salt = 4096, os.urandom(16)
salted = hashlib.pbkdf2_hmac("sha256", pw, salt, iterations)
client_key = hmac.new(salted, b"Client Key", "sha256").digest()
stored_key = hashlib.sha256(client_key).digest()
server_key = hmac.new(salted, b"Server Key", "sha256").digest()
b64 = lambda b: base64.b64encode(b).decode()
print(f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}")
PY
)"
[[ "$verifier" == SCRAM-SHA-256\$* ]] || { echo "post_bootstrap: could not compute the password verifier" >&2; exit 1; }

{
    # Single-quoted: psql does no :variable interpolation inside; none of the
    # values can contain a quote or a backslash (checked above).
    printf "\\set db_user '%s'\n" "$db_user"
    printf "\\set db_name '%s'\n" "$db_name"
    printf "\\set verifier '%s'\n" "$verifier"
    cat <<'SQL'
SELECT format('CREATE ROLE %I', :'db_user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'db_user') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT PASSWORD %L',
              :'db_user', :'verifier') \gexec
SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0', :'db_name', :'db_user', 'UTF8')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db_name') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'db_name', :'db_user') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db_name') \gexec
SELECT format('GRANT ALL ON DATABASE %I TO %I', :'db_name', :'db_user') \gexec
SQL
} | psql --no-psqlrc --quiet --set ON_ERROR_STOP=1 --dbname="$connstring"

echo "post_bootstrap: role '$db_user' and database '$db_name' are ready" >&2
