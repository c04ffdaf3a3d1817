"""Database rules for the ZIP reference that a row-by-row foreign key would make slow.

- Every property's ZIP is in the reference: checked once per INSERT or UPDATE statement over the
  distinct ZIPs of the rows it wrote (a transition table), so a million-row import pays one hash
  aggregate and a few thousand lookups, not a million lookups and row locks.
- ZIP codes are reference data: never deleted and never renumbered (mark them inactive instead), so
  no concurrent transaction can take a ZIP away from a property between the check and its commit.
"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION scoring_property_zip_in_reference() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing text;
BEGIN
    SELECT w.zip_code INTO missing FROM (SELECT DISTINCT zip_code FROM written) w
     WHERE NOT EXISTS (SELECT 1 FROM scoring_zipcode z WHERE z.code = w.zip_code) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ZIP code % is not in the ZIP reference', missing
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'scoring_property_zip_in_reference';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER scoring_property_zip_in_reference_insert
    AFTER INSERT ON scoring_property REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION scoring_property_zip_in_reference();
CREATE TRIGGER scoring_property_zip_in_reference_update
    AFTER UPDATE ON scoring_property REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION scoring_property_zip_in_reference();

CREATE FUNCTION scoring_zipcode_is_permanent() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ZIP code % is reference data: mark it inactive instead of deleting or renumbering it', OLD.code
        USING ERRCODE = 'restrict_violation', CONSTRAINT = 'scoring_zipcode_permanent';
END $$;

CREATE TRIGGER scoring_zipcode_permanent
    BEFORE DELETE OR UPDATE OF code ON scoring_zipcode
    FOR EACH ROW EXECUTE FUNCTION scoring_zipcode_is_permanent();
"""

BACKWARD = """
DROP TRIGGER scoring_zipcode_permanent ON scoring_zipcode;
DROP FUNCTION scoring_zipcode_is_permanent();
DROP TRIGGER scoring_property_zip_in_reference_update ON scoring_property;
DROP TRIGGER scoring_property_zip_in_reference_insert ON scoring_property;
DROP FUNCTION scoring_property_zip_in_reference();
"""


class Migration(migrations.Migration):
    dependencies = [("scoring", "0002_seed_trades")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
