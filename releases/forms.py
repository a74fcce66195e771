from html import escape

from django import forms
from django.contrib.auth import get_user_model
from django.forms.utils import flatatt
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from clusters.models import Environment
from plumbing.integrations import IntegrationError, prometheus
from releases import states
from releases.models import Approval, Check, Service


class DeployForm(forms.Form):
    environment = forms.ModelChoiceField(queryset=Environment.objects.in_use(), to_field_name="slug")
    override_reason = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Admins only: why this deploy may pass a freeze or a lock.",
    )


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=Approval.DECISIONS)
    comment = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))

    def clean(self):
        data = super().clean()
        if data.get("decision") == Approval.REJECT and not data.get("comment", "").strip():
            self.add_error("comment", "Say why you reject it, so the requester can fix it.")
        return data


class CancelForm(forms.Form):
    reason = forms.CharField(required=False, max_length=500)


class RollbackForm(forms.Form):
    reason = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"max_length": "The reason is too long (500 characters at most)."},
    )
    override_reason = forms.CharField(
        required=False,
        max_length=500,
        error_messages={"max_length": "The override reason is too long (500 characters at most)."},
    )


class QuickSelect(forms.Select):
    """A `<select>` whose options are written in Python: Django's own renders a template per
    option, which for the history filter's few hundred people was most of the page's time.
    Values and labels are escaped with html.escape, as Django's escape does."""

    def render(self, name, value, attrs=None, renderer=None):
        widget = self.get_context(name, value, attrs)["widget"]
        options = "".join(
            f'<option value="{escape(str(option["value"]))}"{" selected" if option["selected"] else ""}>'
            f"{escape(str(option['label']))}</option>"
            for _group, choices, _index in widget["optgroups"]
            for option in choices
        )
        options = mark_safe(options)  # noqa: S308 (every value and label above is escaped)
        return format_html('<select name="{}"{}>{}</select>', widget["name"], flatatt(widget["attrs"]), options)


class ListedChoices(forms.models.ModelChoiceIterator):
    """The choices in one plain query: Django's iterator() opens a server-side cursor (DECLARE,
    FETCH, CLOSE: three round trips) to read a few hundred rows."""

    def __iter__(self):
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for obj in self.queryset:
            yield self.choice(obj)


class QuickModelChoiceField(forms.ModelChoiceField):
    iterator = ListedChoices
    widget = QuickSelect


class HistoryFilter(forms.Form):
    service = QuickModelChoiceField(
        queryset=Service.objects.all(), to_field_name="slug", required=False, empty_label="Any service"
    )
    environment = QuickModelChoiceField(
        queryset=Environment.objects.all(), to_field_name="slug", required=False, empty_label="Any environment"
    )
    state = forms.ChoiceField(choices=[("", "Any state"), *states.CHOICES], required=False, widget=QuickSelect)
    requester = QuickModelChoiceField(
        # Only what the choices show: a few hundred people, not their password hashes.
        queryset=get_user_model().objects.order_by("username").only("pk", "username"),
        to_field_name="username",
        required=False,
        empty_label="Anyone",
    )
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    before = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            self.add_error("until", "The end date is before the start date.")
        before = data.get("before")
        if before:
            try:
                data["before"] = int(before)
            except ValueError:
                data["before"] = None
            if not data["before"] or not 0 < data["before"] < 2**63:
                self.add_error(None, "That page link is broken; start again from the first page.")
        return data


class WhenInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%Y-%m-%dT%H:%M")


class LockForm(forms.Form):
    """Lock an environment, or one service in it: a reason always, an end if known."""

    environment = forms.ModelChoiceField(queryset=Environment.objects.in_use(), to_field_name="slug")
    service = forms.ModelChoiceField(
        queryset=Service.objects.all(),
        to_field_name="slug",
        required=False,
        empty_label="All services",
        help_text="Pick one service, or lock every service in the environment.",
    )
    reason = forms.CharField(max_length=200, help_text="Shown to whoever tries to deploy, and sent to Slack.")
    until = forms.DateTimeField(required=False, widget=WhenInput, help_text="Optional: the lock lifts by itself then.")

    def clean_until(self):
        until = self.cleaned_data.get("until")
        if until and until <= timezone.now():
            raise forms.ValidationError("That moment has passed: pick a time to come, or leave it empty.")
        return until


class FreezeForm(forms.Form):
    """A scheduled freeze: from, to and why."""

    environment = forms.ModelChoiceField(queryset=Environment.objects.in_use(), to_field_name="slug")
    starts_at = forms.DateTimeField(label="From", widget=WhenInput)
    ends_at = forms.DateTimeField(label="Until", widget=WhenInput)
    reason = forms.CharField(max_length=200)

    def clean(self):
        data = super().clean()
        starts, ends = data.get("starts_at"), data.get("ends_at")
        if starts and ends and ends <= starts:
            self.add_error("ends_at", "The freeze must end after it starts.")
        elif ends and ends <= timezone.now():
            self.add_error("ends_at", "That freeze would be over already.")
        return data


class CheckForm(forms.ModelForm):
    """A Prometheus check as admins edit it: validated against Prometheus itself before it is saved
    (the query must parse and return a scalar or a single series)."""

    class Meta:
        model = Check
        fields = ["service", "environment", "name", "query", "comparison", "threshold", "window", "enabled"]

    def clean_window(self):
        window = self.cleaned_data["window"].strip()
        if not prometheus.valid_duration(window):
            raise forms.ValidationError("Give a PromQL duration such as 30s, 5m or 1h.")
        return window

    def clean(self):
        cleaned = super().clean()
        query, window = cleaned.get("query"), cleaned.get("window")
        # Only what changed: saving a service must not depend on Prometheus for checks nobody touched.
        if query and window and {"query", "window", "environment"} & set(self.changed_data):
            environment = cleaned.get("environment")
            namespace = environment.namespace if environment else "default"
            self._ask_prometheus(Check(query=query, window=window).promql(namespace))
        return cleaned

    def _ask_prometheus(self, promql: str) -> None:
        try:
            reading = prometheus.query(promql)
        except IntegrationError as error:
            if error.permanent:
                self.add_error("query", f"Prometheus refused the query: {error}")
            else:
                self.add_error("query", f"The query could not be checked: {error} Save it once Prometheus answers.")
            return
        if not reading.single:
            what = f"{reading.series} series" if reading.result_type == "vector" else f"a {reading.result_type}"
            self.add_error(
                "query",
                f"The query returns {what}; a check needs a scalar or a single series (aggregate it, e.g. sum(...)).",
            )
