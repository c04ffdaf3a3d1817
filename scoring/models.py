"""Property data that LeadEngine scores: the ZIP reference, properties, and the signals about them."""

from django.contrib.postgres.fields import ArrayField
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Cast, Floor

from core.fields import ZIP_CODE_REGEX, WrittenJSONField


class ZipCode(models.Model):
    """A US ZIP code from the reference table shipped by the `zipcodes` package (load_zipcodes)."""

    class Kind(models.TextChoices):
        STANDARD = "standard", "Standard"
        PO_BOX = "po_box", "PO box"
        UNIQUE = "unique", "Unique (one organisation)"
        MILITARY = "military", "Military"

    code = models.CharField(max_length=5, primary_key=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    city = models.CharField(max_length=64)
    state = models.CharField(max_length=2, db_index=True)
    county = models.CharField(max_length=64, blank=True)
    time_zone = models.CharField(max_length=40, blank=True)
    latitude = models.FloatField()
    longitude = models.FloatField()
    active = models.BooleanField()

    class Meta:
        ordering = ["code"]
        verbose_name = "ZIP code"
        constraints = [
            models.CheckConstraint(condition=Q(code__regex=ZIP_CODE_REGEX), name="%(app_label)s_%(class)s_five_digits"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.city}, {self.state}"


class Trade(models.Model):
    """A home-improvement trade that contractors buy territories for (roofing, solar, HVAC, ...).

    `permit_keywords` maps building permits to the trade (see PERMIT_KEYWORDS_HELP).
    """

    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=80)
    permit_keywords = ArrayField(
        models.CharField(max_length=40),
        default=list,
        blank=True,
        help_text="Comma-separated words that mark a building permit's type as this trade's, in any case: "
        '"pv" matches the word PV only; a trailing * matches the start of a word ("roof*" finds ROOFTOP).',
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


SOURCE_AS_OF_HELP = (
    "As-of date of the newest import that wrote this row: an import older than this never overwrites it."
)


class Property(models.Model):
    """A residential property (parcel) in a market, keyed by the county's parcel id."""

    class Type(models.TextChoices):
        SINGLE_FAMILY = "single_family", "Single family"
        TOWNHOUSE = "townhouse", "Townhouse"
        CONDO = "condo", "Condo"
        MULTI_FAMILY = "multi_family", "Multi-family (2-4 units)"
        MOBILE_HOME = "mobile_home", "Mobile home"
        OTHER = "other", "Other"

    parcel_id = models.CharField(max_length=64)
    address = models.CharField(max_length=200)
    city = models.CharField(max_length=64)
    state = models.CharField(max_length=2)
    # The reference is enforced by statement-level triggers (migration 0003), not a row-by-row foreign
    # key: one set-based check per statement costs 0.3 s at a million rows, a foreign key 3 to 5 s.
    # Not indexed: each index costs an import of a million rows a second; the queries that need one
    # (by ZIP, by trade) add it with the measurement that justifies it.
    zip_code = models.ForeignKey(
        ZipCode,
        on_delete=models.PROTECT,
        db_column="zip_code",
        db_index=False,
        db_constraint=False,
        related_name="properties",
    )
    zip_derived = models.BooleanField(
        default=False, help_text="The ZIP was not in the source file; it is the ZIP whose centroid is nearest."
    )
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    year_built = models.SmallIntegerField(null=True, blank=True)
    roof_year = models.SmallIntegerField(null=True, blank=True, help_text="Year the roof was last replaced.")
    living_sqft = models.IntegerField(null=True, blank=True)
    lot_sqft = models.IntegerField(null=True, blank=True)
    bedrooms = models.SmallIntegerField(null=True, blank=True)
    bathrooms = models.FloatField(null=True, blank=True)
    stories = models.FloatField(null=True, blank=True)
    property_type = models.CharField(max_length=16, choices=Type.choices, default=Type.SINGLE_FAMILY)
    market_value = models.IntegerField(null=True, blank=True)
    owner_occupied = models.BooleanField(null=True, blank=True)
    owner_name = models.CharField(
        max_length=200,
        blank=True,
        db_default="",
        help_text="Owner of record; what an owner's do-not-contact entry matches.",
    )
    last_sale_date = models.DateField(null=True, blank=True)
    last_sale_price = models.IntegerField(null=True, blank=True)
    source_as_of = models.DateField(null=True, blank=True, help_text=SOURCE_AS_OF_HELP)
    created_at = models.DateTimeField(auto_now_add=True, db_default=models.functions.Now())
    updated_at = models.DateTimeField(auto_now=True, db_default=models.functions.Now())

    class Meta:
        verbose_name_plural = "properties"
        constraints = [
            # A constraint rather than unique=True: Django would add a second, pattern-ops index.
            models.UniqueConstraint(fields=["parcel_id"], name="%(app_label)s_%(class)s_parcel_id_unique"),
            models.CheckConstraint(
                condition=Q(latitude__isnull=True, longitude__isnull=True)
                | Q(latitude__range=(-90, 90), longitude__range=(-180, 180)),
                name="%(app_label)s_%(class)s_coordinates_pair_in_range",
            ),
            models.CheckConstraint(
                condition=Q(year_built__isnull=True) | Q(year_built__range=(1600, 2100)),
                name="%(app_label)s_%(class)s_year_built_plausible",
            ),
            models.CheckConstraint(
                condition=Q(roof_year__isnull=True)
                | Q(roof_year__range=(1600, 2100), year_built__isnull=True)
                | Q(roof_year__gte=F("year_built"), roof_year__lte=2100),
                name="%(app_label)s_%(class)s_roof_not_older_than_house",
            ),
            models.CheckConstraint(
                condition=Q(market_value__isnull=True) | Q(market_value__gte=0),
                name="%(app_label)s_%(class)s_market_value_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(last_sale_price__isnull=True) | Q(last_sale_price__gte=0),
                name="%(app_label)s_%(class)s_sale_price_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.address}, {self.city} {self.state} {self.zip_code_id}"


class StormEvent(models.Model):
    """A severe-weather event: hail (magnitude in inches) or wind, tornado, hurricane (mph).

    It is located by a point and radius, or by a whole ZIP code when the source gives only that.
    """

    class Kind(models.TextChoices):
        HAIL = "hail", "Hail"
        WIND = "wind", "Wind"
        TORNADO = "tornado", "Tornado"
        HURRICANE = "hurricane", "Hurricane"

    event_id = models.CharField(max_length=64)
    event_date = models.DateField(db_index=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    magnitude = models.FloatField(help_text="Hail diameter in inches, or wind speed in mph.")
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    radius_miles = models.FloatField(null=True, blank=True)
    zip_code = models.ForeignKey(
        ZipCode, on_delete=models.PROTECT, db_column="zip_code", null=True, blank=True, related_name="storms"
    )
    source_as_of = models.DateField(null=True, blank=True, help_text=SOURCE_AS_OF_HELP)
    created_at = models.DateTimeField(auto_now_add=True, db_default=models.functions.Now())
    updated_at = models.DateTimeField(auto_now=True, db_default=models.functions.Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event_id"], name="%(app_label)s_%(class)s_event_id_unique"),
            models.CheckConstraint(
                condition=Q(latitude__range=(-90, 90), longitude__range=(-180, 180), radius_miles__gt=0)
                | Q(latitude__isnull=True, longitude__isnull=True, zip_code__isnull=False),
                name="%(app_label)s_%(class)s_located",
            ),
            models.CheckConstraint(
                condition=Q(magnitude__gte=0), name="%(app_label)s_%(class)s_magnitude_not_negative"
            ),
        ]

    def __str__(self) -> str:
        unit = "in" if self.kind == self.Kind.HAIL else "mph"
        return f"{self.get_kind_display()} {self.magnitude:g} {unit} on {self.event_date}"


class Permit(models.Model):
    """A building permit pulled for a property; its type maps it to a trade where one matches."""

    permit_number = models.CharField(max_length=64)
    # Both looked up through scoring_permit_prop_trade (property first); an index per foreign key
    # would only slow imports.
    property = models.ForeignKey(Property, on_delete=models.CASCADE, db_index=False, related_name="permits")
    issued_date = models.DateField()
    permit_type = models.CharField(max_length=100)
    trade = models.ForeignKey(
        Trade, on_delete=models.SET_NULL, null=True, blank=True, db_index=False, related_name="permits"
    )
    value = models.IntegerField(null=True, blank=True)
    source_as_of = models.DateField(null=True, blank=True, help_text=SOURCE_AS_OF_HELP)
    created_at = models.DateTimeField(auto_now_add=True, db_default=models.functions.Now())
    updated_at = models.DateTimeField(auto_now=True, db_default=models.functions.Now())

    class Meta:
        indexes = [models.Index(fields=["property", "trade", "issued_date"], name="scoring_permit_prop_trade")]
        constraints = [
            models.UniqueConstraint(fields=["permit_number"], name="%(app_label)s_%(class)s_number_unique"),
            models.CheckConstraint(
                condition=Q(value__isnull=True) | Q(value__gte=0), name="%(app_label)s_%(class)s_value_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.permit_number} {self.permit_type} ({self.issued_date})"


class Sale(models.Model):
    """A recorded sale of a property; the newest one is copied to the property's last sale fields."""

    # Looked up through scoring_sale_one_per_day (property first).
    property = models.ForeignKey(Property, on_delete=models.CASCADE, db_index=False, related_name="sales")
    sale_date = models.DateField()
    price = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["property", "sale_date"], name="%(app_label)s_%(class)s_one_per_day"),
            models.CheckConstraint(condition=Q(price__gte=0), name="%(app_label)s_%(class)s_price_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.property_id} sold {self.sale_date} for ${self.price:,}"


class TimedRun:
    """A run with started_at and finished_at (set when it ends)."""

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class ImportKind(models.TextChoices):
    PROPERTIES = "properties", "Properties"
    STORMS = "storms", "Storm events"
    PERMITS = "permits", "Permits"
    SALES = "sales", "Sales"


IMPORT_KINDS = ImportKind.choices


class ImportProfile(models.Model):
    """How to read one source's files: its column names mapped to LeadEngine's, and for public formats
    (NOAA, SPC) the conversion of its values into LeadEngine's units. Shipped profiles come with
    LeadEngine; staff add their own per county or vendor feed (`import_data KIND FILE --profile NAME`)."""

    name = models.SlugField(max_length=60, unique=True, help_text="Used as import_data's --profile NAME.")
    kind = models.CharField(max_length=12, choices=IMPORT_KINDS)
    description = models.TextField(blank=True)
    column_map = models.JSONField(
        default=dict,
        blank=True,
        help_text='The file\'s column names and the LeadEngine column each holds: {"APN": "parcel_id"}.',
    )
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            'Conversions of values, all optional: "constants" {column: value on every row}, "multiply" '
            '{column: factor}, "date_format" (strptime, e.g. "%d.%m.%Y"), "converter" (noaa-storm-events, '
            'spc-reports) and its "event_types". See README, Importing data: profiles.'
        ),
    )
    shipped = models.BooleanField(default=False, help_text="Comes with LeadEngine (a public file format).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "name"]

    def __str__(self) -> str:
        return self.name


class ImportRun(TimedRun, models.Model):
    """One import (import_data, an admin upload, the demo): which file, what happened to its rows, how long it took."""

    Kind = ImportKind

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Loaded with rejects"
        FAILED = "failed", "Failed (nothing loaded)"

    kind = models.CharField(max_length=12, choices=Kind.choices)
    file_name = models.CharField(max_length=500)
    file_size = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    rows_read = models.IntegerField(default=0)
    rows_inserted = models.IntegerField(default=0)
    rows_updated = models.IntegerField(default=0)
    rows_unchanged = models.IntegerField(default=0)
    rows_rejected = models.IntegerField(default=0)
    rows_duplicate = models.IntegerField(
        default=0, help_text="Lines identical to an earlier line of the file: loaded once."
    )
    rows_older = models.IntegerField(
        default=0, help_text="Rows skipped because the stored values came from a newer as-of date."
    )
    rows_skipped = models.IntegerField(
        default=0, help_text="Rows the profile leaves out (e.g. NOAA event types LeadEngine does not score)."
    )
    bytes_read = models.BigIntegerField(default=0, help_text="How far into the file the import has read.")
    as_of = models.DateField(null=True, blank=True, help_text="The date the file's values are true as of.")
    profile = models.ForeignKey(ImportProfile, on_delete=models.SET_NULL, null=True, blank=True, related_name="runs")
    origin = models.CharField(
        max_length=8,
        choices=[("command", "import_data"), ("admin", "Admin upload"), ("api", "Staff API"), ("demo", "Demo market")],
        default="command",
    )
    rejects_file = models.CharField(max_length=500, blank=True)
    ignored_columns = ArrayField(
        models.CharField(max_length=200),
        default=list,
        blank=True,
        help_text="Columns of the file LeadEngine does not use.",
    )
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Last sign of life of the importing process while the run is running: a run with none "
        "for IMPORT_STALE_SECONDS was left by a process that died, and is closed as failed.",
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    class Rescoring(models.TextChoices):
        NONE = "", "None needed"
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        NIGHTLY = "nightly", "Left to the nightly run"

    rescoring = models.CharField(
        max_length=8,
        choices=Rescoring.choices,
        default=Rescoring.NONE,
        blank=True,
        help_text="The rescoring of what the import changed (storms, permits, sales, properties): pending from the "
        "import's commit until the storm fast path has rescored the properties it reaches.",
    )
    changed_storms = ArrayField(
        models.BigIntegerField(), default=list, blank=True, help_text="Storm events the import added or changed."
    )
    changed_properties = ArrayField(
        models.BigIntegerField(),
        default=list,
        blank=True,
        help_text="Properties whose data the import changed (their permits, last sale or own columns).",
    )
    rescoring_note = models.TextField(blank=True, help_text="What the rescoring did, or why it was left alone.")
    rescored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            # The fast path and the recovery sweep look for the few pending imports among thousands.
            models.Index(fields=["started_at"], condition=Q(rescoring="pending"), name="importrun_rescoring_pending"),
        ]
        constraints = [
            # Only what an import wrote is rescored: a failed (or unfinished) import has nothing pending.
            models.CheckConstraint(
                condition=~Q(rescoring="pending") | Q(status__in=["succeeded", "partial"]),
                name="%(app_label)s_%(class)s_rescoring_after_writes",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} import of {self.file_name} ({self.get_status_display()})"


class ScoringModel(models.Model):
    """One version of the rules that score properties for a trade. Exactly one version per trade is
    active; drafts are edited and previewed, retired versions are kept for the record."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        CHALLENGER = "challenger", "Challenger"
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"

    trade = models.ForeignKey(Trade, on_delete=models.PROTECT, related_name="scoring_models")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    notes = models.TextField(blank=True, help_text="Why this version exists and what changed.")
    storm_window_days = models.PositiveIntegerField(
        default=90,
        validators=[MinValueValidator(1)],
        help_text="Storms of this many days before the day of scoring count in the storm features.",
    )
    challenger_share = models.FloatField(
        default=0.1,
        help_text="While this version is its trade's challenger: the share of the trade's properties (by a stable "
        "hash of the property) that it scores and makes leads from; the active version does the rest.",
    )
    backtest = models.JSONField(
        default=dict,
        blank=True,
        help_text="A learned version's held-out figures next to the active version's (learn_model).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["trade", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["trade", "version"], name="%(app_label)s_%(class)s_version_unique"),
            models.CheckConstraint(
                condition=Q(storm_window_days__gte=1), name="%(app_label)s_%(class)s_storm_window_positive"
            ),
            models.UniqueConstraint(
                fields=["trade"], condition=Q(status="active"), name="%(app_label)s_%(class)s_one_active_per_trade"
            ),
            models.UniqueConstraint(
                fields=["trade"],
                condition=Q(status="challenger"),
                name="%(app_label)s_%(class)s_one_challenger_per_trade",
            ),
            models.CheckConstraint(
                condition=Q(challenger_share__gt=0, challenger_share__lt=1),
                name="%(app_label)s_%(class)s_challenger_share_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.trade} v{self.version} ({self.get_status_display()})"


class Factor(models.Model):
    """One factor of a scoring model: a feature, the transform that maps it to 0..1, and its weight
    (see scoring/engine.py for the transforms and how a score is computed)."""

    class Feature(models.TextChoices):
        ROOF_AGE = "roof_age", "Roof age (years; roof year, else year built)"
        HOME_AGE = "home_age", "Home age (years)"
        YEARS_SINCE_SALE = "years_since_sale", "Years since the last sale"
        DAYS_SINCE_SALE = "days_since_sale", "Days since the last sale"
        HAIL_INCHES = "hail_inches", "Largest recent hail over the property (inches)"
        DAYS_SINCE_HAIL = "days_since_hail", "Days since that hail"
        WIND_MPH = "wind_mph", "Strongest recent wind over the property (mph)"
        DAYS_SINCE_WIND = "days_since_wind", "Days since that wind"
        YEARS_SINCE_TRADE_PERMIT = (
            "years_since_trade_permit",
            "Years since the last permit of this trade (the home's age when it has none)",
        )
        MARKET_VALUE = "market_value", "Market value (dollars)"
        OWNER_OCCUPIED = "owner_occupied", "Owner-occupied"
        PROPERTY_TYPE = "property_type", "Property type"

    class Transform(models.TextChoices):
        RAMP = "ramp", "Ramp: params low, high"
        STEP = "step", "Step: params threshold, above (true/false)"
        DECAY = "decay", "Time decay: param half_life_days"
        FLAG = "flag", "Flag: no params"
        LOOKUP = "lookup", "Lookup: params values {category: 0..1}, default"

    model = models.ForeignKey(ScoringModel, on_delete=models.CASCADE, related_name="factors")
    position = models.PositiveSmallIntegerField(help_text="Order in the model; breaks ties between reasons.")
    feature = models.CharField(max_length=32, choices=Feature.choices)
    transform = models.CharField(max_length=8, choices=Transform.choices)
    params = models.JSONField(default=dict, blank=True)
    weight = models.FloatField()
    reason = models.CharField(
        max_length=200,
        blank=True,
        help_text='Reason shown to the contractor, with {value}: "Roof is {value:.0f} years old".',
    )
    reason_fallback = models.CharField(
        max_length=200,
        blank=True,
        help_text="Reason shown instead when the feature's value is its fallback, not a record: "
        '"No roof replacement on record; home built {year_built:.0f}".',
    )

    class Meta:
        ordering = ["model", "position"]
        constraints = [
            models.UniqueConstraint(fields=["model", "position"], name="%(app_label)s_%(class)s_position_unique"),
            models.CheckConstraint(condition=Q(weight__gt=0), name="%(app_label)s_%(class)s_weight_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.get_feature_display()} ({self.transform}, weight {self.weight:g})"


class ScoringRun(TimedRun, models.Model):
    """One scoring of every property for one trade with one model version: its progress, outcome and the
    distribution of the scores it wrote (for comparing runs and spotting drift)."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    trade = models.ForeignKey(Trade, on_delete=models.PROTECT, related_name="scoring_runs")
    model = models.ForeignKey(ScoringModel, on_delete=models.PROTECT, related_name="runs")
    challenger = models.ForeignKey(
        ScoringModel,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="challenger_runs",
        help_text="The trade's challenger when the run started: it scored every property in shadow and wrote the "
        "scores of its share.",
    )

    class Kind(models.TextChoices):
        FULL = "full", "Every property"
        INCREMENTAL = "incremental", "Properties a new signal reached"

    kind = models.CharField(
        max_length=12,
        choices=Kind.choices,
        default=Kind.FULL,
        db_default=Kind.FULL,
        help_text="A full run scores every property; an incremental run only those a storm, permit or sale just "
        "imported reached (the storm fast path).",
    )
    cause = models.CharField(
        max_length=200, blank=True, help_text="What started an incremental run: the imports it rescored for."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    distributed = models.BooleanField(default=False, help_text="Partitions ran as Celery tasks.")
    as_of = models.DateField(help_text="The day the ages and days-since features are counted to.")
    partitions = models.PositiveIntegerField(default=0)
    properties_scored = models.PositiveIntegerField(default=0)
    scores_changed = models.PositiveIntegerField(default=0, help_text="Scores written: new, or different from before.")
    distribution = models.JSONField(
        default=dict, blank=True, help_text="Mean, percentiles and a 10-point histogram of the scores written."
    )
    shadow_distribution = models.JSONField(
        default=dict,
        blank=True,
        help_text="With a challenger: the distribution of the scores each version gives every property, "
        '{"active": ..., "challenger": ...}, to compare the two on the same properties.',
    )
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    heartbeat_at = models.DateTimeField(
        auto_now_add=True,
        help_text="Last sign of life: refreshed every few seconds while the run's process or a worker works on it; "
        "a run silent for SCORING_RUN_STALE_SECONDS is taken as stopped.",
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            # The lock that keeps two full runs of a trade from overlapping, whichever machines they run on.
            # Incremental runs are not held by it: a storm must not wait for a night's run to end, and
            # scores_write never lets a score computed from older data replace a fresher one.
            models.UniqueConstraint(
                fields=["trade"],
                condition=Q(status="running", kind="full"),
                name="%(app_label)s_%(class)s_one_running_per_trade",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.trade} scoring run {self.pk} ({self.get_status_display()})"

    def summary(self) -> str:
        """One line for a terminal or a log: what was scored, how fast, and the median and 90th percentile."""
        line = f"{self.trade.slug}: run {self.pk} {self.get_status_display().lower()}, model v{self.model.version}, "
        if self.challenger is not None:
            line += f"challenger v{self.challenger.version} on {self.challenger.challenger_share:.0%}, "
        line += f"{self.properties_scored:,} properties scored ({self.scores_changed:,} scores changed)"
        if self.duration_seconds:
            line += f" in {self.duration_seconds:.1f} s ({self.properties_scored / self.duration_seconds:,.0f}/s)"
        if self.distribution.get("count"):
            line += f"; median score {self.distribution['p50']}, 90th percentile {self.distribution['p90']}"
        if self.error:
            line += f"\n{self.error}"
        return line


class ScoringPartition(models.Model):
    """A slice of a scoring run: the properties with ids in [first_id, last_id]. A partition is written
    in one transaction, so it is either wholly scored by its run or not at all.

    Whoever scores it (a worker's task, or the run's own process) first claims it: running, with a lease
    (a token of its own) and a heartbeat it refreshes while it works. Only the lease holder records the
    outcome; a lease whose heartbeat is older than SCORING_RUN_STALE_SECONDS belongs to a holder that
    stopped, and the partition may be claimed again."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    run = models.ForeignKey(ScoringRun, on_delete=models.CASCADE, related_name="partition_set")
    number = models.PositiveIntegerField()
    first_id = models.BigIntegerField()
    last_id = models.BigIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    properties_scored = models.PositiveIntegerField(default=0)
    scores_changed = models.PositiveIntegerField(default=0)
    score_sum = models.FloatField(default=0)
    urgency_sum = models.FloatField(default=0)
    histogram = models.JSONField(default=list, blank=True, help_text="Scores per 0.1-point bin, 1001 bins.")
    shadow = models.JSONField(
        default=dict,
        blank=True,
        help_text='With a challenger: each version\'s scores of every property of the partition, {"active": '
        '{properties_scored, score_sum, urgency_sum, histogram}, "challenger": {...}}.',
    )
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Times it was claimed.")
    lease = models.CharField(max_length=64, blank=True, help_text="Token of the task or process that claimed it.")
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life of its lease holder.")
    dispatched_at = models.DateTimeField(null=True, blank=True, help_text="When it was last sent to the workers.")
    dispatches = models.PositiveSmallIntegerField(default=0, help_text="Times it was sent to the workers.")
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="%(app_label)s_%(class)s_number_unique"),
            models.CheckConstraint(
                condition=Q(first_id__lte=F("last_id")), name="%(app_label)s_%(class)s_id_range_ordered"
            ),
        ]

    def __str__(self) -> str:
        return f"partition {self.number} of run {self.run_id} ({self.get_status_display()})"


SCORE_BAND_WIDTH = 5


def score_band(score: float) -> int:
    """The band of Score.score_band that holds `score`: reads of scores >= S ask for bands >= this."""
    return int(score // SCORE_BAND_WIDTH)


class Score(models.Model):
    """The current intent score of one property for one trade: written whole by one scoring model
    version, replaced by the next run or rescore. `reasons` holds the top contributing factors:
    [{"feature", "value", "points", "text"}], highest first."""

    # References are checked by triggers (migration 0007) once per INSERT statement, not row by row:
    # foreign keys cost 2.5 s of every 100,000 scores a run writes.
    property = models.ForeignKey(
        Property, on_delete=models.CASCADE, db_index=False, db_constraint=False, related_name="scores"
    )
    trade = models.ForeignKey(
        Trade, on_delete=models.CASCADE, db_index=False, db_constraint=False, related_name="scores"
    )
    model = models.ForeignKey(
        ScoringModel, on_delete=models.PROTECT, db_index=False, db_constraint=False, related_name="scores"
    )
    score = models.FloatField(help_text="0-100: how likely the owner buys from this trade.")
    urgency = models.FloatField(help_text="0-100: how much of the score comes from recent events.")
    score_band = models.GeneratedField(
        expression=Cast(Floor(F("score") / SCORE_BAND_WIDTH), models.SmallIntegerField()),
        output_field=models.SmallIntegerField(),
        db_persist=True,
        help_text=f"The score's band of {SCORE_BAND_WIDTH} points (0-20): what reads by score range use.",
    )
    reasons = WrittenJSONField(default=list)
    scored_at = models.DateTimeField(
        help_text="When the data these values were computed from was read (the run's start, the rescoring's "
        "read): a score is only ever replaced by one computed from data read no earlier. A run leaves an "
        "unchanged score alone."
    )
    digest = models.BigIntegerField(
        help_text="Hash of model, score, urgency and reasons: how a run finds what changed."
    )

    class Meta:
        indexes = [
            # The trade's best scores: lead generation and territory demand read the properties above a
            # score through (trade, score_band) (0.03 s for 30,000 of 1,000,000 where a scan of every
            # trade's scores takes 1.2 s). Indexed on the band, not the score, so that the daily small
            # changes of a score leave the index alone and stay in-page (HOT) updates: an index on the
            # score itself cost a next-day run of 1,000,000 scores 1.2 s, this one 0.3 s.
            models.Index(fields=["trade", "-score_band"], name="score_trade_band"),
        ]
        constraints = [
            # Also the index that finds a property's scores and a partition's rows (property_id first).
            models.UniqueConstraint(fields=["property", "trade"], name="%(app_label)s_%(class)s_property_trade_unique"),
            models.CheckConstraint(
                condition=Q(score__gte=0, score__lte=100), name="%(app_label)s_%(class)s_score_range"
            ),
            models.CheckConstraint(
                condition=Q(urgency__gte=0, urgency__lte=100), name="%(app_label)s_%(class)s_urgency_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.property_id} {self.trade}: {self.score:g}"


class EvaluationRun(models.Model):
    """How one scoring model version's leads turned out, over the leads of a period whose outcome is known
    (converted, or closed without a sale): conversion and return rate by score decile, top-decile lift,
    AUC with its 95% interval, calibration and conversion per reason. Written by the lead quality service
    (leads.services.quality); one row per evaluation, so the figures have a history."""

    trade = models.ForeignKey(Trade, on_delete=models.CASCADE, related_name="evaluation_runs")
    model = models.ForeignKey(ScoringModel, on_delete=models.CASCADE, related_name="evaluation_runs")
    first_day = models.DateField(help_text="Leads generated from this day...")
    last_day = models.DateField(help_text="...to this day, inclusive.")
    outcomes = models.PositiveIntegerField(default=0, help_text="Leads whose outcome is known.")
    conversions = models.PositiveIntegerField(default=0)
    exploration_outcomes = models.PositiveIntegerField(default=0, help_text="Of those, exploration leads.")
    conversion_rate = models.FloatField(null=True, blank=True, help_text="Weighted by sampling weight.")
    auc = models.FloatField(null=True, blank=True)
    auc_low = models.FloatField(null=True, blank=True, help_text="95% interval of the AUC.")
    auc_high = models.FloatField(null=True, blank=True)
    top_decile_lift = models.FloatField(null=True, blank=True)
    figures = models.JSONField(
        default=dict, blank=True, help_text="Deciles, calibration table and conversion per reason."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Evaluation of {self.model} over {self.first_day}..{self.last_day}"
