"""A refusal raised by a rule-checked write in a page view (`rules.Refused`) becomes the refused
page with its reasons: 409 when something else is under way, 403 otherwise. Views call the flow
and say what happened; they do not each catch the refusal. (The API answers refusals in
releases.api.errors.)"""

from django.shortcuts import render

from releases import rules


class RefusedPageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, rules.Refused):
            return None
        return render(request, "refused.html", {"message": str(exception)}, status=409 if exception.conflict else 403)
