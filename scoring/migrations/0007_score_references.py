"""The references of a score (property, trade, model version), kept by triggers instead of foreign keys.

A foreign key checks and locks the referenced row for every score written: 2.5 s of every 100,000
scores a run writes. Instead:
- Every INSERT of scores is checked once per statement over the distinct properties, trades and
  model versions of the rows it wrote (a transition table).
- A score's property and trade never change: an UPDATE that changes them is refused. An UPDATE that
  changes its model version checks that version, row by row; a run's daily updates keep the version
  and skip the check (the trigger's WHEN clause).
- Deleting properties deletes their scores. The delete first locks the score table against writers
  until it commits, so no score of a deleted property can be committed behind the check; properties
  are deleted rarely and by hand (imports never delete).
- A trade or a model version with scores cannot be deleted.
"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION scoring_score_references_exist() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing text;
BEGIN
    SELECT 'property ' || w.property_id INTO missing FROM (SELECT DISTINCT property_id FROM written) w
     WHERE NOT EXISTS (SELECT 1 FROM scoring_property p WHERE p.id = w.property_id) LIMIT 1;
    IF NOT FOUND THEN
        SELECT 'trade ' || w.trade_id INTO missing FROM (SELECT DISTINCT trade_id FROM written) w
         WHERE NOT EXISTS (SELECT 1 FROM scoring_trade t WHERE t.id = w.trade_id) LIMIT 1;
    END IF;
    IF NOT FOUND THEN
        SELECT 'scoring model ' || w.model_id INTO missing FROM (SELECT DISTINCT model_id FROM written) w
         WHERE NOT EXISTS (SELECT 1 FROM scoring_scoringmodel m WHERE m.id = w.model_id) LIMIT 1;
    END IF;
    IF FOUND THEN
        RAISE EXCEPTION 'a score refers to % which does not exist', missing
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'scoring_score_references';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER scoring_score_references_insert
    AFTER INSERT ON scoring_score REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION scoring_score_references_exist();

CREATE FUNCTION scoring_score_keys_are_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.property_id <> OLD.property_id OR NEW.trade_id <> OLD.trade_id THEN
        RAISE EXCEPTION 'the property and trade of a score never change; write the score of the other pair'
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'scoring_score_references';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER scoring_score_keys_fixed
    BEFORE UPDATE OF property_id, trade_id ON scoring_score
    FOR EACH ROW EXECUTE FUNCTION scoring_score_keys_are_fixed();

CREATE FUNCTION scoring_score_model_exists() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM scoring_scoringmodel m WHERE m.id = NEW.model_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'a score refers to scoring model % which does not exist', NEW.model_id
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'scoring_score_references';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER scoring_score_model_changed
    BEFORE UPDATE OF model_id ON scoring_score
    FOR EACH ROW WHEN (NEW.model_id IS DISTINCT FROM OLD.model_id)
    EXECUTE FUNCTION scoring_score_model_exists();

CREATE FUNCTION scoring_property_delete_lock_scores() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE scoring_score IN SHARE ROW EXCLUSIVE MODE;
    RETURN NULL;
END $$;

CREATE FUNCTION scoring_property_delete_scores() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM scoring_score s USING deleted d WHERE s.property_id = d.id;
    RETURN NULL;
END $$;

CREATE TRIGGER scoring_property_delete_lock_scores
    BEFORE DELETE ON scoring_property
    FOR EACH STATEMENT EXECUTE FUNCTION scoring_property_delete_lock_scores();
CREATE TRIGGER scoring_property_delete_scores
    AFTER DELETE ON scoring_property REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION scoring_property_delete_scores();

CREATE FUNCTION scoring_keep_scored() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (TG_TABLE_NAME = 'scoring_trade' AND EXISTS (SELECT 1 FROM scoring_score s WHERE s.trade_id = OLD.id))
       OR (TG_TABLE_NAME = 'scoring_scoringmodel' AND EXISTS (SELECT 1 FROM scoring_score s WHERE s.model_id = OLD.id))
    THEN
        RAISE EXCEPTION '% % has scores and cannot be deleted', TG_TABLE_NAME, OLD.id
            USING ERRCODE = 'restrict_violation', CONSTRAINT = 'scoring_score_references';
    END IF;
    RETURN OLD;
END $$;

CREATE TRIGGER scoring_trade_keep_scored
    BEFORE DELETE ON scoring_trade FOR EACH ROW EXECUTE FUNCTION scoring_keep_scored();
CREATE TRIGGER scoring_scoringmodel_keep_scored
    BEFORE DELETE ON scoring_scoringmodel FOR EACH ROW EXECUTE FUNCTION scoring_keep_scored();
"""

BACKWARD = """
DROP TRIGGER scoring_scoringmodel_keep_scored ON scoring_scoringmodel;
DROP TRIGGER scoring_trade_keep_scored ON scoring_trade;
DROP FUNCTION scoring_keep_scored();
DROP TRIGGER scoring_property_delete_scores ON scoring_property;
DROP TRIGGER scoring_property_delete_lock_scores ON scoring_property;
DROP FUNCTION scoring_property_delete_scores();
DROP FUNCTION scoring_property_delete_lock_scores();
DROP TRIGGER scoring_score_model_changed ON scoring_score;
DROP FUNCTION scoring_score_model_exists();
DROP TRIGGER scoring_score_keys_fixed ON scoring_score;
DROP FUNCTION scoring_score_keys_are_fixed();
DROP TRIGGER scoring_score_references_insert ON scoring_score;
DROP FUNCTION scoring_score_references_exist();
"""


class Migration(migrations.Migration):
    dependencies = [("scoring", "0006_scores_and_runs")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
