"""The admin's pages of imports (ImportRunAdmin): the form that uploads a file, and what a run's page shows
while it runs (progress, refreshed) and once it has ended (counts, error, the rejects file)."""

from __future__ import annotations

from pathlib import Path

from django import forms
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from scoring.models import ImportProfile, ImportRun
from scoring.services.imports.uploads import import_upload_check, import_upload_too_large_message

# A queued or running run's page reloads itself this often (a <meta> refresh: no script, so the pages'
# Content-Security-Policy has nothing to allow), until the run has ended.
PAGE_REFRESH_SECONDS = 3
ACTIVE = (ImportRun.Status.QUEUED, ImportRun.Status.RUNNING)


class ProfileChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, profile: ImportProfile) -> str:
        return f"{profile.name} ({profile.get_kind_display().lower()})"


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file", help_text="With a header row; see README, Importing data, for the columns of each kind."
    )
    kind = forms.ChoiceField(choices=ImportRun.Kind.choices, label="Kind of file")
    profile = ProfileChoiceField(
        queryset=ImportProfile.objects.order_by("kind", "name"),
        required=False,
        help_text="How to read the source's columns and values (one of the file's kind); none: LeadEngine's own "
        "column names.",
    )
    as_of = forms.DateField(
        required=False,
        label="As of",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text="The date the file's values are true as of; blank: today. Not in the future: a row never "
        "overwrites values stored from a newer as-of.",
    )

    def __init__(self, *args, too_large: bool = False, **kwargs) -> None:
        """`too_large`: the upload handler dropped the file as it arrived, past IMPORT_UPLOAD_MAX_BYTES."""
        super().__init__(*args, **kwargs)
        self.too_large = too_large
        if too_large:  # the file never arrived: say why, rather than that it is missing
            self.fields["file"].required = False

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if self.too_large:
            raise forms.ValidationError(import_upload_too_large_message())
        return upload

    def clean(self):
        data = super().clean()
        if "kind" in data and "as_of" in data and "profile" in data:
            try:
                import_upload_check(kind=data["kind"], profile=data["profile"], as_of=data["as_of"])
            except forms.ValidationError as error:
                self.add_error(None, error)
        return data


def import_run_progress(run: ImportRun) -> str:
    """How far a queued or running run has got, in words: "37% (45.0 MB of 120.0 MB), 412,000 rows read"."""
    if run.status == ImportRun.Status.QUEUED:
        queued = timezone.localtime(run.started_at)
        return f"Queued at {queued:%Y-%m-%d %H:%M:%S}: waiting for a worker to start it."
    if run.status != ImportRun.Status.RUNNING:
        return ""
    rows = f"{run.rows_read:,} rows read"
    if not run.file_size:
        return rows
    return f"{import_run_percent(run)}% ({filesizeformat(run.bytes_read)} of {filesizeformat(run.file_size)}), {rows}"


def import_run_percent(run: ImportRun) -> int | None:
    if run.status != ImportRun.Status.RUNNING or not run.file_size:
        return None
    return min(100, run.bytes_read * 100 // run.file_size)


def rejects_available(run: ImportRun) -> bool:
    """The run's rejects file is on this server still (an import on another machine writes it there)."""
    return bool(run.rejects_file) and Path(run.rejects_file).is_file()


def import_run_page(run: ImportRun | None) -> dict:
    """What the run's page adds to Django's read-only change form."""
    if run is None:
        return {}
    return {
        "import_active": run.status in ACTIVE,
        "import_progress": import_run_progress(run),
        "import_percent": import_run_percent(run),
        "refresh_seconds": PAGE_REFRESH_SECONDS,
    }
