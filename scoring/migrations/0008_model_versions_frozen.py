"""Scoring model versions are frozen once they leave draft, so a score's model version says exactly how
it was computed; and the default models' storm reasons say how far and when.

- The factors of an active or retired version cannot be added or changed, nor deleted once the
  version has scored anything (a run or a score refers to it); such a version's trade, number and
  storm window cannot change, nor can it go back to draft. A change is a new version.
- The default version 1 models (migration 0005) quote the storm in their hail reasons:
  "1.75 in hail 0.8 mi away on 2026-05-03". Versions that staff already changed are left alone.
"""

from django.db import migrations

HAIL_REASONS = {
    "{value:.2f} in hail within its radius": "{value:.2f} in hail {hail_where} on {hail_date}",
    "Hail {value:.0f} days ago": "Hail {value:.0f} days ago, on {hail_date}",
}


def quote_storms(apps, schema_editor):
    Factor = apps.get_model("scoring", "Factor")
    for old, new in HAIL_REASONS.items():
        Factor.objects.filter(model__version=1, reason=old).update(reason=new)


def unquote_storms(apps, schema_editor):
    Factor = apps.get_model("scoring", "Factor")
    for old, new in HAIL_REASONS.items():
        Factor.objects.filter(model__version=1, reason=new).update(reason=old)


FORWARD = """
CREATE FUNCTION scoring_factor_of_draft_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    model_status text;
BEGIN
    SELECT status INTO model_status FROM scoring_scoringmodel
     WHERE id = CASE WHEN TG_OP = 'DELETE' THEN OLD.model_id ELSE NEW.model_id END;
    IF model_status IS NOT NULL AND model_status <> 'draft' AND (TG_OP <> 'DELETE'
        OR EXISTS (SELECT 1 FROM scoring_scoringrun r WHERE r.model_id = OLD.model_id)
        OR EXISTS (SELECT 1 FROM scoring_score s WHERE s.model_id = OLD.model_id)) THEN
        RAISE EXCEPTION 'scoring model % is %: its factors are frozen; make a new version to change them',
            CASE WHEN TG_OP = 'DELETE' THEN OLD.model_id ELSE NEW.model_id END, model_status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'scoring_factor_frozen';
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.model_id <> OLD.model_id THEN
        SELECT status INTO model_status FROM scoring_scoringmodel WHERE id = OLD.model_id;
        IF model_status <> 'draft' THEN
            RAISE EXCEPTION 'a factor of a % scoring model cannot move to another', model_status
                USING ERRCODE = 'check_violation', CONSTRAINT = 'scoring_factor_frozen';
        END IF;
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;

CREATE TRIGGER scoring_factor_frozen
    BEFORE INSERT OR UPDATE OR DELETE ON scoring_factor
    FOR EACH ROW EXECUTE FUNCTION scoring_factor_of_draft_only();

CREATE FUNCTION scoring_scoringmodel_version_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'draft' AND (
        NEW.status = 'draft' OR NEW.trade_id <> OLD.trade_id OR NEW.version <> OLD.version
        OR NEW.storm_window_days <> OLD.storm_window_days
    ) THEN
        RAISE EXCEPTION 'scoring model % is %: only its notes and status (active to retired) can change',
            OLD.id, OLD.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'scoring_scoringmodel_frozen';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER scoring_scoringmodel_frozen
    BEFORE UPDATE ON scoring_scoringmodel
    FOR EACH ROW EXECUTE FUNCTION scoring_scoringmodel_version_frozen();
"""

BACKWARD = """
DROP TRIGGER scoring_scoringmodel_frozen ON scoring_scoringmodel;
DROP FUNCTION scoring_scoringmodel_version_frozen();
DROP TRIGGER scoring_factor_frozen ON scoring_factor;
DROP FUNCTION scoring_factor_of_draft_only();
"""


class Migration(migrations.Migration):
    dependencies = [("scoring", "0007_score_references")]
    operations = [
        migrations.RunPython(quote_storms, unquote_storms),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
