import contractors.models
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('scoring', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Contractor',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=200)),
                ('slug', models.SlugField(max_length=60, unique=True)),
                ('contact_email', models.EmailField(blank=True, max_length=254)),
                ('contact_phone', models.CharField(blank=True, max_length=32)),
                ('status', models.CharField(choices=[('active', 'Active'), ('paused', 'Paused (no new assignments)'), ('suspended', 'Suspended (no new assignments, no API access)')], default='active', max_length=10)),
                ('status_reason', models.CharField(blank=True, help_text='Why the contractor is paused or suspended; API clients see it.', max_length=300)),
                ('status_changed_at', models.DateTimeField(blank=True, null=True)),
                ('daily_cap', models.PositiveIntegerField(blank=True, help_text="Most leads per day in the contractor's time zone; blank: no cap.", null=True)),
                ('weekly_cap', models.PositiveIntegerField(blank=True, help_text='Most leads per week; blank: no cap.', null=True)),
                ('monthly_cap', models.PositiveIntegerField(blank=True, help_text='Most leads per month; blank: no cap.', null=True)),
                ('time_zone', models.CharField(default=contractors.models.default_time_zone, max_length=64, validators=[contractors.models.validate_time_zone])),
                ('webhook_url', models.URLField(blank=True, help_text='Where new leads are posted; blank: leads are pulled by API.')),
                ('webhook_secret', models.CharField(default=contractors.models.webhook_secret_new, editable=False, max_length=64)),
                ('notes', models.TextField(blank=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'ordering': ['name'],
            },
        ),
        migrations.CreateModel(
            name='ContractorTrade',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('contractor', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='contractor_trades', to='contractors.contractor')),
                ('trade', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='contractor_trades', to='scoring.trade')),
            ],
            options={
                'ordering': ['contractor', 'trade'],
            },
        ),
        migrations.AddField(
            model_name='contractor',
            name='trades',
            field=models.ManyToManyField(blank=True, related_name='contractors', through='contractors.ContractorTrade', to='scoring.trade'),
        ),
        migrations.CreateModel(
            name='Membership',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('contractor', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='memberships', to='contractors.contractor')),
                ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='contractor_membership', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['contractor', 'user'],
            },
        ),
        migrations.CreateModel(
            name='ApiKey',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(blank=True, help_text='What the key is for, e.g. "CRM sync".', max_length=100)),
                ('prefix', models.CharField(editable=False, max_length=16)),
                ('key_hash', models.CharField(editable=False, max_length=64)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('last_used_at', models.DateTimeField(blank=True, null=True)),
                ('revoked_at', models.DateTimeField(blank=True, null=True)),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('contractor', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='api_keys', to='contractors.contractor')),
            ],
            options={
                'verbose_name': 'API key',
                'ordering': ['contractor', '-created_at'],
                'constraints': [models.UniqueConstraint(fields=('key_hash',), name='contractors_apikey_hash_unique'), models.CheckConstraint(condition=models.Q(('key_hash__regex', '^[0-9a-f]{64}$')), name='contractors_apikey_hash_is_sha256')],
            },
        ),
        migrations.CreateModel(
            name='ContractorStatusChange',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('from_status', models.CharField(choices=[('active', 'Active'), ('paused', 'Paused (no new assignments)'), ('suspended', 'Suspended (no new assignments, no API access)')], max_length=10)),
                ('to_status', models.CharField(choices=[('active', 'Active'), ('paused', 'Paused (no new assignments)'), ('suspended', 'Suspended (no new assignments, no API access)')], max_length=10)),
                ('reason', models.CharField(blank=True, max_length=300)),
                ('changed_at', models.DateTimeField()),
                ('changed_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('contractor', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='status_changes', to='contractors.contractor')),
            ],
            options={
                'ordering': ['-changed_at', '-id'],
                'constraints': [models.CheckConstraint(condition=models.Q(('from_status', models.F('to_status')), _negated=True), name='contractors_contractorstatuschange_changes_something')],
            },
        ),
        migrations.AddConstraint(
            model_name='contractortrade',
            constraint=models.UniqueConstraint(fields=('contractor', 'trade'), name='contractors_contractortrade_unique'),
        ),
        migrations.AddConstraint(
            model_name='contractor',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['active', 'paused', 'suspended'])), name='contractors_contractor_status_valid'),
        ),
        migrations.AddConstraint(
            model_name='contractor',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('daily_cap__isnull', True), ('daily_cap__gte', 1), _connector='OR'), models.Q(('weekly_cap__isnull', True), ('weekly_cap__gte', 1), _connector='OR'), models.Q(('monthly_cap__isnull', True), ('monthly_cap__gte', 1), _connector='OR')), name='contractors_contractor_caps_positive'),
        ),
        migrations.AddConstraint(
            model_name='contractor',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('daily_cap__isnull', True), ('weekly_cap__isnull', True), ('daily_cap__lte', models.F('weekly_cap')), _connector='OR'), models.Q(('weekly_cap__isnull', True), ('monthly_cap__isnull', True), ('weekly_cap__lte', models.F('monthly_cap')), _connector='OR'), models.Q(('daily_cap__isnull', True), ('monthly_cap__isnull', True), ('daily_cap__lte', models.F('monthly_cap')), _connector='OR')), name='contractors_contractor_caps_ordered'),
        ),
    ]
