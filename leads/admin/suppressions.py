"""The do-not-contact list: entries are added (one, or a CSV file) through the service, which withdraws the
unassigned leads an entry matches and lists the assigned ones for staff."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from core.admin import BigTableAdmin, service_form_response
from core.text import counted, sentence
from leads.errors import LeadError, SuppressionImportError
from leads.models import Suppression, suppression_value_normalize
from leads.services.suppressions import (
    SuppressionSummary,
    suppression_add,
    suppression_entry_clean,
    suppressions_import_csv,
)

IMPORT_MAX_BYTES = 20 * 1024 * 1024
IMPORT_ERRORS_SHOWN = 50
MATCHING_LEADS_SHOWN = 50


class SuppressionForm(forms.Form):
    kind = forms.ChoiceField(choices=Suppression.Kind.choices)
    value = forms.CharField(
        max_length=300,
        help_text="The parcel id, street address or owner name; kept upper-case, punctuation as spaces.",
    )
    zip_code = forms.CharField(
        max_length=5, required=False, label="ZIP code", help_text="Addresses only: the ZIP; blank: any ZIP."
    )
    note = forms.CharField(max_length=300, required=False, help_text="Who asked, and how.")

    def clean(self):
        data = super().clean()
        if not self.errors:
            try:
                suppression_entry_clean(
                    kind=data["kind"], value=data["value"], zip_code=data["zip_code"], note=data["note"]
                )
            except LeadError as error:
                raise forms.ValidationError(sentence(str(error))) from None
        return data


class SuppressionImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="A header of kind,value and optionally zip,note; kind is parcel, address or owner. "
        "One bad row and nothing is imported.",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > IMPORT_MAX_BYTES:
            raise forms.ValidationError(f"The file is larger than {IMPORT_MAX_BYTES // (1024 * 1024)} MB.")
        return upload


@admin.register(Suppression)
class SuppressionAdmin(BigTableAdmin):
    """Entries are added through the service (one by one here, or a CSV file), which withdraws the
    unassigned leads they match; they are not edited afterwards. Lifting one is a delete."""

    change_list_template = "admin/leads/suppression/change_list.html"
    list_display = ["value", "kind", "zip_code", "note", "source", "created_by", "created_at"]
    list_filter = ["kind", "source"]
    list_select_related = ["created_by"]
    search_fields = ["value"]
    search_help_text = "Part of a value, in any case and punctuation."

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_search_results(self, request, queryset, search_term):
        # Values are stored normalized: "123 Main St." finds "123 MAIN ST".
        return super().get_search_results(request, queryset, suppression_value_normalize(search_term))

    def get_urls(self):
        return [
            path("import/", self.admin_site.admin_view(self.import_view), name="leads_suppression_import"),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = SuppressionForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                summary = suppression_add(
                    kind=data["kind"],
                    value=data["value"],
                    zip_code=data["zip_code"],
                    note=data["note"],
                    created_by=request.user,
                )
            except LeadError as error:
                form.add_error(None, sentence(str(error)))
            else:
                listed = "added to" if summary.added else "already on"
                value = suppression_value_normalize(data["value"])
                self.message_user(request, f"{value} {listed} the do-not-contact list: {summary}.", messages.SUCCESS)
                self._matching_leads_message(request, summary)
                return redirect("admin:leads_suppression_changelist")
        return service_form_response(
            self,
            request,
            form=form,
            title="Add to the do-not-contact list",
            submit_label="Add",
            intro="Unassigned leads the entry matches are withdrawn at once; leads already with contractors "
            "are listed for you to decide.",
        )

    def import_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = SuppressionImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                summary = suppressions_import_csv(data=form.cleaned_data["file"].read(), created_by=request.user)
            except SuppressionImportError as error:
                form.add_error("file", self._import_errors(error))
            else:
                self.message_user(request, f"Do-not-contact file imported: {summary}.", messages.SUCCESS)
                self._matching_leads_message(request, summary)
                return redirect("admin:leads_suppression_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Import a do-not-contact file",
            "form": form,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/leads/suppression/import.html", context)

    @staticmethod
    def _import_errors(error: SuppressionImportError) -> list[str]:
        shown = [f"Line {line}: {message}" for line, message in error.errors[:IMPORT_ERRORS_SHOWN]]
        more = len(error.errors) - IMPORT_ERRORS_SHOWN
        tail = [f"... and {more} more bad rows."] if more > 0 else []
        return [f"{len(error.errors)} bad row(s); nothing was imported.", *shown, *tail]

    def _matching_leads_message(self, request, summary: SuppressionSummary) -> None:
        """Open leads with contractors that match are left to staff: link them, to withdraw if need be."""
        ids = summary.assigned_leads
        if not ids:
            return
        url = f"{reverse('admin:leads_lead_changelist')}?id__in={','.join(map(str, ids))}"
        shown = ", ".join(map(str, ids[:MATCHING_LEADS_SHOWN]))
        more = f" and {len(ids) - MATCHING_LEADS_SHOWN} more" if len(ids) > MATCHING_LEADS_SHOWN else ""
        self.message_user(
            request,
            format_html(
                '{} with contractors match and were left to you (withdraw them if need be): <a href="{}">{}{}</a>.',
                sentence(counted(len(ids), "lead")),
                url,
                shown,
                more,
            ),
            messages.WARNING,
        )
