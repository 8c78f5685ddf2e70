"""PostgreSQL triggers that make execution_auditrecord append-only (UPDATE, DELETE, TRUNCATE raise).

SQLite has no such triggers here: the model refuses updates and deletes at the ORM level instead.

Test databases only: Django's test runner empties tables between transactional tests with one TRUNCATE of every
table. The trigger lets a TRUNCATE through when the *database-level* setting
`hypersentry.audit_truncate_allowed=on` exists (ALTER DATABASE, which only the database owner or a superuser can
do); this migration sets it only when ENVIRONMENT=test and the database name starts with "test_". A session-level
SET does not count, so the application cannot grant itself the exception.
"""

from django.conf import settings
from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION execution_audit_append_only() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' AND EXISTS (
      SELECT 1 FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
      WHERE d.datname = current_database() AND s.setrole = 0
        AND 'hypersentry.audit_truncate_allowed=on' = ANY (s.setconfig)) THEN
    RETURN NULL;
  END IF;
  RAISE EXCEPTION 'execution_auditrecord is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER execution_audit_no_update_delete
  BEFORE UPDATE OR DELETE ON execution_auditrecord
  FOR EACH ROW EXECUTE FUNCTION execution_audit_append_only();

CREATE TRIGGER execution_audit_no_truncate
  BEFORE TRUNCATE ON execution_auditrecord
  FOR EACH STATEMENT EXECUTE FUNCTION execution_audit_append_only();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS execution_audit_no_truncate ON execution_auditrecord;
DROP TRIGGER IF EXISTS execution_audit_no_update_delete ON execution_auditrecord;
DROP FUNCTION IF EXISTS execution_audit_append_only();
"""

ALLOW_TRUNCATE_IN_TEST_DB = r"""
DO $$ BEGIN
  EXECUTE format('ALTER DATABASE %I SET hypersentry.audit_truncate_allowed = %L', current_database(), 'on');
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'not the database owner: transactional tests cannot flush execution_auditrecord';
END $$;
"""


def forward(apps, schema_editor):  # type: ignore[no-untyped-def]
    conn = schema_editor.connection
    if conn.vendor != "postgresql":
        return
    schema_editor.execute(FORWARD, params=None)
    if settings.ENVIRONMENT == "test" and str(conn.settings_dict["NAME"]).startswith("test_"):
        schema_editor.execute(ALLOW_TRUNCATE_IN_TEST_DB, params=None)


def backward(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("execution", "0001_initial")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
