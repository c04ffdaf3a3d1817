import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contractors', '0001_initial'),
        ('scoring', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Territory',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('started_at', models.DateTimeField()),
                ('start_reason', models.CharField(choices=[('claim', 'Claimed'), ('transfer', 'Transferred in'), ('waitlist', 'From the waitlist')], max_length=10)),
                ('ended_at', models.DateTimeField(blank=True, null=True)),
                ('end_reason', models.CharField(blank=True, choices=[('release', 'Released'), ('transfer', 'Transferred out')], max_length=10)),
                ('start_note', models.CharField(blank=True, help_text='Why the ownership started.', max_length=300)),
                ('end_note', models.CharField(blank=True, help_text='Why the ownership ended.', max_length=300)),
                ('active_trade_id', models.GeneratedField(db_persist=True, expression=models.Case(models.When(ended_at__isnull=True, then=models.F('trade_id'))), help_text='trade_id while active, NULL once ended: what the owner-serves-trade foreign key checks.', output_field=models.BigIntegerField(null=True))),
                ('contractor', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='territories', to='contractors.contractor')),
                ('ended_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('started_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('trade', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='territories', to='scoring.trade')),
                ('zip_code', models.ForeignKey(db_column='zip_code', on_delete=django.db.models.deletion.PROTECT, related_name='+', to='scoring.zipcode')),
            ],
            options={
                'verbose_name_plural': 'territories',
                'ordering': ['zip_code', 'trade', '-started_at'],
            },
        ),
        migrations.CreateModel(
            name='WaitlistEntry',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('status', models.CharField(choices=[('waiting', 'Waiting'), ('offered', 'Offered'), ('claimed', 'Claimed'), ('declined', 'Declined'), ('expired', 'Offer expired'), ('withdrawn', 'Withdrawn')], default='waiting', max_length=10)),
                ('joined_at', models.DateTimeField()),
                ('offered_at', models.DateTimeField(blank=True, null=True)),
                ('offer_expires_at', models.DateTimeField(blank=True, null=True)),
                ('closed_at', models.DateTimeField(blank=True, help_text='When the entry stopped waiting.', null=True)),
                ('contractor', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='waitlist_entries', to='contractors.contractor')),
                ('territory', models.ForeignKey(blank=True, help_text='What it claimed.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='territories.territory')),
                ('trade', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='waitlist_entries', to='scoring.trade')),
                ('zip_code', models.ForeignKey(db_column='zip_code', on_delete=django.db.models.deletion.PROTECT, related_name='+', to='scoring.zipcode')),
            ],
            options={
                'verbose_name': 'waitlist entry',
                'verbose_name_plural': 'waitlist',
                'ordering': ['zip_code', 'trade', 'joined_at', 'id'],
            },
        ),
        migrations.AddIndex(
            model_name='territory',
            index=models.Index(condition=models.Q(('ended_at__isnull', True)), fields=['contractor', 'trade'], name='territory_owner_active'),
        ),
        migrations.AddConstraint(
            model_name='territory',
            constraint=models.UniqueConstraint(condition=models.Q(('ended_at__isnull', True)), fields=('zip_code', 'trade'), name='territories_territory_one_active_owner'),
        ),
        migrations.AddConstraint(
            model_name='territory',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('end_reason', ''), ('ended_at__isnull', True)), models.Q(('end_reason__in', ['release', 'transfer']), ('ended_at__gte', models.F('started_at')), ('ended_at__isnull', False)), _connector='OR'), name='territories_territory_end_consistent'),
        ),
        migrations.AddConstraint(
            model_name='territory',
            constraint=models.CheckConstraint(condition=models.Q(('start_reason__in', ['claim', 'transfer', 'waitlist'])), name='territories_territory_start_reason_valid'),
        ),
        migrations.AddIndex(
            model_name='waitlistentry',
            index=models.Index(condition=models.Q(('status__in', ['waiting', 'offered'])), fields=['zip_code', 'trade', 'joined_at', 'id'], name='waitlist_open_line'),
        ),
        migrations.AddIndex(
            model_name='waitlistentry',
            index=models.Index(condition=models.Q(('status', 'offered')), fields=['offer_expires_at'], name='waitlist_offers_due'),
        ),
        migrations.AddConstraint(
            model_name='waitlistentry',
            constraint=models.UniqueConstraint(condition=models.Q(('status__in', ['waiting', 'offered'])), fields=('zip_code', 'trade', 'contractor'), name='territories_waitlistentry_one_open_per_contractor'),
        ),
        migrations.AddConstraint(
            model_name='waitlistentry',
            constraint=models.UniqueConstraint(condition=models.Q(('status', 'offered')), fields=('zip_code', 'trade'), name='territories_waitlistentry_one_offer_per_territory'),
        ),
        migrations.AddConstraint(
            model_name='waitlistentry',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('closed_at__isnull', True), ('offered_at__isnull', True), ('status', 'waiting')), models.Q(('closed_at__isnull', True), ('offer_expires_at__gt', models.F('offered_at')), ('status', 'offered')), models.Q(('closed_at__isnull', False), ('status__in', ['claimed', 'declined', 'expired', 'withdrawn'])), _connector='OR'), name='territories_waitlistentry_status_consistent'),
        ),
        migrations.AddConstraint(
            model_name='waitlistentry',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'claimed'), ('territory__isnull', False)), models.Q(models.Q(('status', 'claimed'), _negated=True), ('territory__isnull', True)), _connector='OR'), name='territories_waitlistentry_claim_names_territory'),
        ),
        # Django cannot declare a composite foreign key. This one makes "a contractor owns territories only of
        # trades it serves" hold under any writer, concurrently too: inserting an active territory takes a
        # key-share lock on the contractor-trade row, deleting that row waits for it, and either is refused
        # while the other exists. active_trade_id is NULL on ended rows, and a foreign key with a NULL column
        # is not checked (MATCH SIMPLE), so history never stops a contractor from dropping a trade.
        migrations.RunSQL(
            sql=(
                "ALTER TABLE territories_territory ADD CONSTRAINT territories_territory_owner_serves_trade "
                "FOREIGN KEY (contractor_id, active_trade_id) "
                "REFERENCES contractors_contractortrade (contractor_id, trade_id)"
            ),
            reverse_sql="ALTER TABLE territories_territory DROP CONSTRAINT territories_territory_owner_serves_trade",
        ),
    ]
