"""Imports started from the admin: staff upload a file, it is stored under IMPORT_UPLOAD_DIR, a run is recorded
"queued", and a Celery worker imports it (scoring.tasks.import_run_start) through data_file_import, which takes
the run over and records its progress and outcome on it.

A queued run is claimed by one UPDATE ... WHERE status = 'queued', so a task delivered twice (a redelivery, a
copy the recovery sweep sent) imports the file once. While a run is queued, its heartbeat_at is when its task
was last handed to the broker (no import is beating yet). The recovery sweep (import_runs_recover) sends again
a run the broker refused when it was uploaded, after a minute, and one sent JOB_QUEUE_TIMEOUT_MINUTES ago that
no worker took (its message was lost), every JOB_QUEUE_TIMEOUT_MINUTES while it waits: an uploaded file is
imported once a worker is back, never failed for want of one.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation, ValidationError
from django.core.files.move import file_move_safe
from django.core.files.uploadedfile import TemporaryUploadedFile, UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile, TemporaryFileUploadHandler
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.text import get_valid_filename

from core.retry import db_retry
from scoring.models import ImportProfile, ImportRun
from scoring.services.imports.kinds import IMPORTERS
from scoring.services.imports.run import data_file_import, import_runs_abandoned_close

log = logging.getLogger(__name__)

Status = ImportRun.Status
ORIGIN_ADMIN = "admin"
# A run's own upload sends its task at once; the sweep sends only what that could not (the broker was down).
UNSENT_GRACE = dt.timedelta(minutes=1)
STORED_NAME_MAX = 120  # characters of the uploaded file's own name kept in the stored one


def import_upload_dir() -> Path:
    directory = Path(settings.IMPORT_UPLOAD_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def import_upload_too_large_message() -> str:
    limit = settings.IMPORT_UPLOAD_MAX_BYTES
    return (
        f"The file is larger than the upload limit of {filesizeformat(limit)} (IMPORT_UPLOAD_MAX_BYTES): "
        "import it with `manage.py import_data` on the server, or raise the limit."
    )


class ImportUploadFile(TemporaryUploadedFile):
    """An upload being received, written into IMPORT_UPLOAD_DIR rather than FILE_UPLOAD_TEMP_DIR: storing it is
    then a rename on the same disk, and a /tmp kept in memory (tmpfs) never holds a file of gigabytes."""

    def __init__(
        self,
        name: str | None,
        content_type: str | None,
        size: int | None,
        charset: str | None,
        content_type_extra: dict[str, bytes] | None = None,
    ) -> None:
        file = tempfile.NamedTemporaryFile(prefix=".upload-", suffix=".partial", dir=import_upload_dir())  # noqa: SIM115 (closed with the request)
        UploadedFile.__init__(self, file, name, content_type, size, charset, content_type_extra)


class ImportUploadHandler(TemporaryFileUploadHandler):
    """Receives an import file to disk in chunks, whatever its size, and skips one that grows past
    IMPORT_UPLOAD_MAX_BYTES as it arrives (`too_large` then says so): the rest of it is read and dropped,
    never written, and the form's other fields still arrive."""

    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.too_large = False
        self.limit = settings.IMPORT_UPLOAD_MAX_BYTES

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        FileUploadHandler.new_file(self, *args, **kwargs)
        self.file = ImportUploadFile(self.file_name, self.content_type, 0, self.charset, self.content_type_extra)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        if start + len(raw_data) > self.limit:
            self.too_large = True
            raise SkipFile
        self.file.write(raw_data)


def import_upload_check(*, kind: str, profile: ImportProfile | None, as_of: dt.date | None) -> None:
    """What an upload must name: a kind of file, a profile of that kind (or none), an as-of date not in the
    future (a file cannot be true as of a day still to come). ValidationError by field."""
    errors = {}
    if kind not in IMPORTERS:
        errors["kind"] = f"Unknown kind {kind!r}: use one of {', '.join(IMPORTERS)}."
    elif profile is not None and profile.kind != kind:
        errors["profile"] = (
            f"The profile {profile.name} reads {profile.get_kind_display().lower()} files, "
            f"not {ImportRun.Kind(kind).label.lower()}."
        )
    if as_of is not None and as_of > timezone.localdate():
        errors["as_of"] = "The as-of date is in the future: a file is true as of today at the latest."
    if errors:
        raise ValidationError(errors)


def import_upload_store(*, upload: UploadedFile[bytes]) -> Path:
    """Move the upload into IMPORT_UPLOAD_DIR under a name no other upload has (the time, a random part, its
    own name made safe); returns the stored path. Moved by rename when it was received there, copied in
    chunks otherwise: never read whole into memory."""
    own_name = Path(upload.name or "").name
    try:
        safe = get_valid_filename(own_name)[-STORED_NAME_MAX:]
    except SuspiciousFileOperation:  # a name of dots only, or nothing usable
        safe = "upload.csv"
    directory = import_upload_dir()
    target = directory / f"{timezone.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:12]}-{safe}"
    if hasattr(upload, "temporary_file_path"):
        assert upload.file is not None  # an upload being received has its file
        upload.file.flush()
        file_move_safe(upload.temporary_file_path(), str(target), allow_overwrite=False)
        upload.close()  # its temporary name is gone: closing only lets the handle go
    else:  # received in memory (a small file) by another upload handler
        with open(target, "xb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
    permissions = settings.FILE_UPLOAD_PERMISSIONS
    if permissions is not None:
        os.chmod(target, permissions)
    return target


def import_upload_queue(
    *, upload: UploadedFile[bytes], kind: str, profile: ImportProfile | None = None, as_of: dt.date | None = None
) -> ImportRun:
    """Store an uploaded file and record its run, queued, origin admin; its task is sent once the run is
    committed (a broker that is down leaves it queued for the recovery sweep to send)."""
    import_upload_check(kind=kind, profile=profile, as_of=as_of)
    if upload.size is not None and upload.size > settings.IMPORT_UPLOAD_MAX_BYTES:
        raise ValidationError({"file": import_upload_too_large_message()})
    path = import_upload_store(upload=upload)
    try:
        with transaction.atomic():
            run = ImportRun.objects.create(
                kind=kind,
                file_name=str(path),
                file_size=path.stat().st_size,
                status=Status.QUEUED,
                origin=ORIGIN_ADMIN,
                profile=profile,
                as_of=as_of,
            )
            transaction.on_commit(lambda: import_run_send(run_id=run.pk))
    except BaseException:
        path.unlink(missing_ok=True)  # no run names it: nothing would ever import or remove it
        raise
    return run


def import_run_send(*, run_id: int, now: dt.datetime | None = None) -> bool:
    """Hand the run's task to the broker and note when (heartbeat_at, while queued); False when the broker
    refused it (logged): the run stays queued, and the recovery sweep sends it once the broker is back."""
    from scoring.tasks import import_run_start as import_run_start_task

    try:
        import_run_start_task.delay(run_id)
    except Exception as error:  # whatever the broker's client raises, the run is kept for the sweep
        log.warning("import run %s is queued but not sent (the broker refused it: %s); it is sent later", run_id, error)
        return False
    try:
        ImportRun.objects.filter(pk=run_id, status=Status.QUEUED).update(heartbeat_at=now or timezone.now())
    except DatabaseError as error:  # the sweep may send it again: a second copy is a no-op
        log.warning("import run %s was sent, but its send time was not recorded: %s", run_id, error)
    return True


def import_run_claim(*, run_id: int) -> ImportRun | None:
    """Take a queued run for this process: one UPDATE, so of two deliveries of its task one alone gets it.
    None when it is not queued any more (taken, ended, or deleted)."""
    now = timezone.now()
    taken = ImportRun.objects.filter(pk=run_id, status=Status.QUEUED).update(
        status=Status.RUNNING, started_at=now, heartbeat_at=now
    )
    return ImportRun.objects.select_related("profile").get(pk=run_id) if taken else None


def import_run_start(*, run_id: int) -> ImportRun | None:
    """Import a queued run's file (the Celery task's body); None when the run was not queued any more (another
    delivery of the task has it), which is left alone. The import records its own progress and outcome."""
    run = db_retry(lambda: import_run_claim(run_id=run_id), what=f"claiming import run {run_id}")
    if run is None:
        log.info("import run %s is not queued any more; this copy of its task does nothing", run_id)
        return None
    result = data_file_import(
        kind=run.kind, path=run.file_name, profile=run.profile, as_of=run.as_of, origin=ORIGIN_ADMIN, run=run
    )
    return result.run


def import_runs_recover(*, now: dt.datetime | None = None) -> dict[str, int]:
    """The imports' part of the recovery sweep: close the runs whose importing process died
    (import_runs_abandoned_close) and send again the queued runs whose task was lost (see the module).
    Safe from several sweeps at once: a run is re-sent by the one whose UPDATE marks it."""
    now = now or timezone.now()
    abandoned = import_runs_abandoned_close(now=now)
    timeout = dt.timedelta(minutes=settings.JOB_QUEUE_TIMEOUT_MINUTES)
    lost = Q(heartbeat_at__isnull=True, started_at__lt=now - UNSENT_GRACE) | Q(heartbeat_at__lt=now - timeout)
    resent = 0
    waiting = ImportRun.objects.filter(lost, status=Status.QUEUED).order_by("pk").values_list("pk", flat=True)
    for run_id in list(waiting):
        if not ImportRun.objects.filter(lost, pk=run_id, status=Status.QUEUED).update(heartbeat_at=now):
            continue  # claimed by a worker, or re-sent by another sweep, meanwhile
        log.warning("import run %s is still queued, its task lost or never sent: sending it again", run_id)
        if import_run_send(run_id=run_id, now=now):
            resent += 1
        else:  # still unsent: the next sweep tries again
            ImportRun.objects.filter(pk=run_id, status=Status.QUEUED, heartbeat_at=now).update(heartbeat_at=None)
    return {"abandoned": abandoned, "resent": resent}
