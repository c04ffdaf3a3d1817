"""Scoring models: drafts edited with their factors, previewed on a sample of the market beside their
differences from the active version, then activated, or first run as their trade's challenger on a share of
the properties and then promoted or ended. A version that left draft is read-only; "New draft from this
version" copies it, every factor included, into a draft to edit."""

from functools import partial

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from core.admin import ObjectActionsAdmin, action_form
from core.errors import DomainError
from scoring.admin.evaluations import model_evaluation_context
from scoring.learning import backtest_beats_active
from scoring.models import Factor, ScoringModel
from scoring.services.drafts import scoring_model_differences, scoring_model_draft_copy
from scoring.services.preview import scoring_model_preview
from scoring.services.scoring_models import (
    scoring_model_activate,
    scoring_model_allows,
    scoring_model_challenge,
    scoring_model_challenge_end,
    scoring_model_check,
    scoring_model_is_frozen,
    scoring_model_promote,
)

Status = ScoringModel.Status


class ChallengeForm(forms.Form):
    share = forms.FloatField(
        min_value=0.01,
        max_value=0.99,
        initial=0.1,
        help_text="The share of the trade's properties this version scores and makes leads from (0.01 to 0.99), "
        "picked by a stable hash of the property: the same properties from run to run.",
    )


class FactorInline(admin.TabularInline):
    model = Factor
    extra = 0
    # Two lines of parameters (JSON) rather than ten: with leadengine/static/leadengine/admin.css's column
    # widths, the factors fit a 1440 px screen beside the admin's menu.
    widgets = {"params": forms.Textarea(attrs={"rows": 2})}
    fields = ["position", "feature", "transform", "params", "weight", "reason", "reason_fallback"]
    ordering = ["position"]

    def _editable(self, obj) -> bool:
        return obj is None or not scoring_model_is_frozen(obj)

    def get_formset(self, request, obj=None, **kwargs):
        return super().get_formset(request, obj, widgets=self.widgets, **kwargs)

    def has_add_permission(self, request, obj=None) -> bool:
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._editable(obj) and super().has_delete_permission(request, obj)


def _allows(change: str):
    """The rule of a version's page button: the status rule its service applies (CHANGES_FROM)."""
    return partial(scoring_model_allows, change=change)


@admin.register(ScoringModel)
class ScoringModelAdmin(ObjectActionsAdmin):
    """Drafts are edited here; a version that left draft (challenger, active, retired) is read-only, with
    neither Save nor Delete, and is changed by a new draft copied from it. A version's page offers the
    changes its status allows, by the services' own rules."""

    list_display = ["trade", "version", "status", "share", "factor_count", "storm_window_days", "activated_at",
                    "preview_link"]  # fmt: skip
    list_filter = ["trade", "status"]
    inlines = [FactorInline]
    actions = ["activate", "challenge", "promote", "end_challenge", "new_draft"]
    object_actions = {
        "activate": ("Activate", _allows("activate")),
        "challenge": ("Run as challenger", _allows("challenge")),
        "promote": ("Promote to active", _allows("promote")),
        "end_challenge": ("End the challenge", _allows("end_challenge")),
        "new_draft": ("New draft from this version", lambda model: True),  # any version can be copied
    }

    def get_urls(self):
        preview = path(
            "<int:object_id>/preview/",
            self.admin_site.admin_view(self.preview_view),
            name="scoring_scoringmodel_preview",
        )
        return [preview, *super().get_urls()]

    @admin.display(description="Preview")
    def preview_link(self, model: ScoringModel) -> str:
        if model.pk is None:
            return "Save the draft first."
        url = reverse("admin:scoring_scoringmodel_preview", args=[model.pk])
        return format_html('<a href="{}">Score a sample of the market</a>', url)

    def preview_view(self, request, object_id: int):
        model = get_object_or_404(ScoringModel.objects.select_related("trade"), pk=object_id)
        if not self.has_view_permission(request, model):
            return redirect("admin:index")
        try:
            preview = scoring_model_preview(model=model)
        except ValidationError as error:
            self.message_user(request, f"This version cannot be previewed yet: {error.messages[0]}", messages.ERROR)
            return redirect("admin:scoring_scoringmodel_change", model.pk)
        compared = [
            (str(preview.active), preview.active_distribution),
            (f"{preview.challenger} on every property", preview.challenger_distribution),
            ("Scored now (the challenger on its share)", preview.current_distribution),
        ]
        compared = [(name, distribution) for name, distribution in compared if distribution is not None]
        columns = [str(model)] + [name for name, _ in compared]
        distributions = [preview.distribution] + [distribution for _, distribution in compared]
        rows = [
            (label, [d.get(key, "") for d in distributions])
            for label, key in [("Properties", "count"), ("Mean score", "mean_score"), ("Mean urgency", "mean_urgency"),
                               ("10th percentile", "p10"), ("Median", "p50"), ("90th percentile", "p90"),
                               ("99th percentile", "p99")]
        ]  # fmt: skip
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Preview of {model}",
            "preview": preview,
            "chart": histogram_chart(preview.distribution, preview.active_distribution),
            "summary_columns": columns,
            "summary_rows": rows,
            "backtest": backtest_table(model.backtest),
            "differences": None if scoring_model_is_frozen(model) else scoring_model_differences(model=model),
        }
        return TemplateResponse(request, "admin/scoring/scoringmodel/preview.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        model = self.get_object(request, object_id)
        extra = {}
        if model is not None:
            extra["evaluation"] = model_evaluation_context(model)
            if not scoring_model_is_frozen(model):
                extra["differences"] = scoring_model_differences(model=model)
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    # A frozen version is shown, never saved or deleted (the database refuses changes to its definition too).
    def has_change_permission(self, request, obj=None) -> bool:
        return (obj is None or not scoring_model_is_frozen(obj)) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return (obj is None or not scoring_model_is_frozen(obj)) and super().has_delete_permission(request, obj)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(number_of_factors=Count("factors"))

    @admin.display(description="Challenger share")
    def share(self, model: ScoringModel) -> str:
        return f"{model.challenger_share:.0%}" if model.status == Status.CHALLENGER else ""

    @admin.display(description="Factors", ordering="number_of_factors")
    def factor_count(self, model: ScoringModel) -> int:
        return model.number_of_factors

    def get_readonly_fields(self, request, obj=None):
        # The challenger share is set by "Run as challenger"; the backtest by learning. A frozen version is
        # read-only whole, having no change permission.
        return ["status", "challenger_share", "backtest", "activated_at", "preview_link"]

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        try:
            scoring_model_check(model=form.instance)
        except ValidationError as error:
            self.message_user(
                request, f"Saved as a draft that cannot be activated yet: {error.messages[0]}", messages.WARNING
            )

    @admin.action(description="Activate the selected version (retires its trade's active one)", permissions=["change"])
    def activate(self, request, queryset):
        for model in queryset.order_by("trade_id", "version"):
            try:
                scoring_model_activate(model=model)
            except (DomainError, ValidationError) as error:
                self.message_user(request, _message(error), messages.ERROR)
            else:
                self.message_user(request, f"{model.trade} v{model.version} is now active.", messages.SUCCESS)

    @admin.action(description="Run as challenger (on a share of the trade's properties)", permissions=["change"])
    def challenge(self, request, queryset):
        data, page = action_form(
            self,
            request,
            queryset.select_related("trade"),
            form_class=ChallengeForm,
            action="challenge",
            title="Run as challenger",
            submit_label="Run as challenger",
            intro="From its trade's next scoring run, each draft scores every property in shadow, and the share "
            "of the properties given here gets its scores and leads; the active version does the rest.",
        )
        if data is None:
            return page
        for model in queryset.select_related("trade").order_by("trade_id", "version"):
            try:
                scoring_model_challenge(model=model, share=data["share"])
            except (DomainError, ValidationError) as error:
                self.message_user(request, _message(error), messages.ERROR)
            else:
                self.message_user(
                    request, f"{model.trade} v{model.version} is now the challenger on {data['share']:.0%}.",
                    messages.SUCCESS,
                )  # fmt: skip
        return None

    @admin.action(description="Promote the challenger to active (retires the active version)", permissions=["change"])
    def promote(self, request, queryset):
        for model in queryset.select_related("trade").order_by("trade_id", "version"):
            try:
                scoring_model_promote(model=model)
            except (DomainError, ValidationError) as error:
                self.message_user(request, f"{_message(error)}; nothing done.", messages.ERROR)
            else:
                self.message_user(request, f"{model.trade} v{model.version} is now active.", messages.SUCCESS)

    @admin.action(description="End the challenge (the challenger retires)", permissions=["change"])
    def end_challenge(self, request, queryset):
        for model in queryset.select_related("trade").order_by("trade_id", "version"):
            try:
                scoring_model_challenge_end(model=model)
            except DomainError as error:
                self.message_user(request, str(error), messages.ERROR)
            else:
                self.message_user(
                    request, f"The challenge of {model.trade} v{model.version} ended; it is retired.", messages.SUCCESS
                )

    @admin.action(description="New draft from the selected version (a copy with every factor)", permissions=["add"])
    def new_draft(self, request, queryset):
        """Each selected version copied into a new draft of its trade; a single copy opens at once."""
        drafts = []
        for model in queryset.select_related("trade").order_by("trade_id", "version"):
            draft = scoring_model_draft_copy(model=model, by=request.user)
            self.log_addition(request, draft, f"Copied from v{model.version}.")
            self.message_user(
                request,
                f"{draft.trade} v{draft.version} is a new draft copied from v{model.version}.",
                messages.SUCCESS,
            )
            drafts.append(draft)
        if len(drafts) == 1:
            return redirect("admin:scoring_scoringmodel_change", drafts[0].pk)
        return None


def _message(error: DomainError | ValidationError) -> str:
    return error.messages[0] if isinstance(error, ValidationError) else str(error)


def backtest_table(backtest: dict | None) -> dict | None:
    """A learned version's backtest (ScoringModel.backtest) as the preview's comparison table: the
    candidate and the active version of the day it was learned, on the same held-out leads."""
    if not backtest or "candidate" not in backtest:
        return None
    candidate, active = backtest["candidate"], backtest.get("active", {})

    def auc(figures: dict) -> str:
        if figures.get("auc") is None:
            return "n/a"
        return f"{figures['auc']:.3f} [{figures['auc_low']:.3f}, {figures['auc_high']:.3f}]"

    def lift(figures: dict) -> str:
        return "n/a" if figures.get("lift") is None else f"{figures['lift']:.2f}x"

    test, train = backtest.get("test", {}), backtest.get("train", {})
    held_out = f"{test.get('outcomes', 0):,} ({test.get('conversions', 0):,} converted)"
    return {
        "columns": ["This version (fitted on the older days)", f"Active v{active.get('version')} when learned"],
        "rows": [
            ("Held-out AUC [95% interval]", [auc(candidate), auc(active)]),
            ("Held-out top-decile lift", [lift(candidate), lift(active)]),
            ("Held-out outcomes", [held_out, held_out]),
        ],
        "split_day": backtest.get("split_day"),
        "train": f"{train.get('outcomes', 0):,} ({train.get('conversions', 0):,} converted)",
        "first_day": backtest.get("first_day"),
        "last_day": backtest.get("last_day"),
        "beats_active": backtest_beats_active(backtest),
    }


def histogram_chart(distribution: dict, compared: dict | None, *, width: int = 640, height: int = 180) -> dict:
    """Bars of a 10-point score histogram (and of a compared one beside them) as SVG coordinates."""
    labels = list((distribution.get("histogram") or {}).keys()) or [f"{10 * i}-{10 * i + 10}" for i in range(10)]
    counts = [distribution.get("histogram", {}).get(label, 0) for label in labels]
    other = [compared.get("histogram", {}).get(label, 0) for label in labels] if compared else None
    tallest = max(counts + (other or []) + [1])
    plot = height - 20
    slot = width / len(labels)
    bar = slot * (0.4 if other else 0.8)
    bars = []
    for index, (label, count) in enumerate(zip(labels, counts, strict=True)):
        x = index * slot + slot * 0.1
        bars.append(
            {
                "label": label,
                "count": count,
                "x": round(x, 1),
                "width": round(bar, 1),
                "height": round(plot * count / tallest, 1),
                "y": round(plot - plot * count / tallest, 1),
                "label_x": round(index * slot + slot / 2, 1),
                "active_count": other[index] if other else None,
                "active_x": round(x + bar, 1),
                "active_height": round(plot * other[index] / tallest, 1) if other else None,
                "active_y": round(plot - plot * other[index] / tallest, 1) if other else None,
            }
        )
    return {"width": width, "height": height, "label_y": height - 5, "bars": bars}
