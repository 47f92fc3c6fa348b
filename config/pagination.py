"""Page-number pagination for the JSON API's lists (docs/api.md "Lists")."""

import re

from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination


class StrictPageNumberPagination(PageNumberPagination):
    """DRF's page-number pagination, answering 404 (as for any invalid page) for a `page` that is not one whole
    number: DRF read `?page=` as page 1 and `?page=2&page=x` as its last value, so requests the schema calls
    invalid (`page` is an integer ≥ 1) were answered 200 — the fuzz run (config/tests/test_api_fuzz.py) found it."""

    def paginate_queryset(self, queryset, request, view=None):
        pages = request.query_params.getlist(self.page_query_param)
        if pages and (len(pages) > 1 or not re.fullmatch(r"[0-9]+", pages[0])):
            raise NotFound(f"Invalid page: {', '.join(pages) or 'empty'}.")
        return super().paginate_queryset(queryset, request, view)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"]["minimum"] = 1
        return parameters
