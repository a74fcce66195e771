"""The "API tokens" page: a person makes, sees and revokes their tokens; admins also those of
service accounts. A new token is shown once, in the answer to the form that made it."""

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.validators import RegexValidator
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from releases.api.models import SCOPES, ApiToken

EXPIRY_CHOICES = [(7, "7 days"), (30, "30 days"), (90, "90 days"), (365, "1 year"), (0, "Never")]


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        validators=[RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$", "Letters, digits, spaces and . _ - only.")],
        help_text="What uses it, e.g. “jenkins storefront” or “my laptop”.",
    )
    scopes = forms.MultipleChoiceField(choices=SCOPES, widget=forms.CheckboxSelectMultiple, initial=["read"])
    expires_in = forms.TypedChoiceField(choices=EXPIRY_CHOICES, coerce=int, initial=90, label="Expires in")
    owner = forms.ModelChoiceField(
        queryset=get_user_model().objects.none(),
        required=False,
        empty_label="Me",
        help_text="Admins may make tokens for service accounts.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        if user.is_staff:
            self.fields["owner"].queryset = service_accounts()
        else:
            del self.fields["owner"]

    def clean(self):
        data = super().clean()
        owner = data.get("owner") or self.user
        if data.get("name") and ApiToken.objects.live().filter(user=owner, name=data["name"]):
            self.add_error("name", f"{owner.username} already has a token named “{data['name']}”.")
        return data


def service_accounts():
    return get_user_model().objects.filter(service_account__isnull=False).order_by("username")


def visible_tokens(user):
    """The user's own tokens, and for admins those of service accounts."""
    mine = Q(user=user)
    if user.is_staff:
        mine |= Q(user__service_account__isnull=False)
    return ApiToken.objects.filter(mine).select_related("user", "created_by")


@never_cache
def tokens(request):
    form = TokenForm(request.POST or None, user=request.user)
    new_token = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            owner = data.get("owner") or request.user
            _, new_token = ApiToken.issue(
                owner, data["name"], data["scopes"], days=data["expires_in"] or None, created_by=request.user
            )
            form = TokenForm(user=request.user)
        else:
            status = 400
    context = {"form": form, "new_token": new_token, "tokens": visible_tokens(request.user)[:200]}
    return render(request, "api/tokens.html", context, status=status)


@require_POST
def revoke(request, pk):
    token = get_object_or_404(visible_tokens(request.user), pk=pk)
    if not token.revoke():
        raise Http404("Already revoked.")
    messages.success(request, f"Token “{token.name}” of {token.user.username} is revoked.")
    return redirect("api_tokens")
