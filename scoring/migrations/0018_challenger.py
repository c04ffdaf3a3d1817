"""Champion and challenger: a run records the challenger it ran with and both versions' distributions over
every property; a version's challenger share is frozen with the rest of it once it leaves draft (a property is
then scored by the same version from run to run), and a version a run challenged with keeps its factors as
one that a run scored with does (migration 0008's triggers, extended)."""

import django.db.models.deletion
from django.db import migrations, models

FACTOR_FROZEN = """
CREATE OR REPLACE FUNCTION scoring_factor_of_draft_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    model_status text;
BEGIN
    SELECT status INTO model_status FROM scoring_scoringmodel
     WHERE id = CASE WHEN TG_OP = 'DELETE' THEN OLD.model_id ELSE NEW.model_id END;
    IF model_status IS NOT NULL AND model_status <> 'draft' AND (TG_OP <> 'DELETE'
        OR EXISTS (SELECT 1 FROM scoring_scoringrun r WHERE r.model_id = OLD.model_id)
        {challenger_runs}
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
"""

VERSION_FROZEN = """
CREATE OR REPLACE FUNCTION scoring_scoringmodel_version_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'draft' AND (
        NEW.status = 'draft' OR NEW.trade_id <> OLD.trade_id OR NEW.version <> OLD.version
        OR NEW.storm_window_days <> OLD.storm_window_days {share}
    ) THEN
        RAISE EXCEPTION 'scoring model % is %: only its notes and status (active to retired) can change',
            OLD.id, OLD.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'scoring_scoringmodel_frozen';
    END IF;
    RETURN NEW;
END $$;
"""

FORWARD = FACTOR_FROZEN.replace(
    "{challenger_runs}", "OR EXISTS (SELECT 1 FROM scoring_scoringrun r WHERE r.challenger_id = OLD.model_id)"
) + VERSION_FROZEN.replace("{share}", "OR NEW.challenger_share <> OLD.challenger_share")
BACKWARD = FACTOR_FROZEN.replace("{challenger_runs}", "") + VERSION_FROZEN.replace("{share}", "")


class Migration(migrations.Migration):

    dependencies = [
        ('scoring', '0017_default_models_v2'),
    ]

    operations = [
        migrations.AddField(
            model_name='scoringpartition',
            name='shadow',
            field=models.JSONField(blank=True, default=dict, help_text='With a challenger: each version\'s scores of every property of the partition, {"active": {properties_scored, score_sum, urgency_sum, histogram}, "challenger": {...}}.'),
        ),
        migrations.AddField(
            model_name='scoringrun',
            name='challenger',
            field=models.ForeignKey(blank=True, help_text="The trade's challenger when the run started: it scored every property in shadow and wrote the scores of its share.", null=True, on_delete=django.db.models.deletion.PROTECT, related_name='challenger_runs', to='scoring.scoringmodel'),
        ),
        migrations.AddField(
            model_name='scoringrun',
            name='shadow_distribution',
            field=models.JSONField(blank=True, default=dict, help_text='With a challenger: the distribution of the scores each version gives every property, {"active": ..., "challenger": ...}, to compare the two on the same properties.'),
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
