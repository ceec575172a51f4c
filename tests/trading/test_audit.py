"""Audit rows store JSON: ``jsonable`` gives what a JSON round trip through Django's encoder would."""

import datetime
import json
import uuid
from collections import OrderedDict
from decimal import Decimal

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from django.utils.translation import gettext_lazy

from trading.audit import jsonable
from trading.models import Order, Position


def round_trip(data):
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


@pytest.mark.parametrize(
    "data",
    [
        {"qty": Decimal("0.01000000"), "pnl": Decimal("0E-8"), "price": Decimal("65000.5")},
        {"at": timezone.now(), "day": datetime.date(2026, 11, 25), "time": datetime.time(1, 2, 3, 456789)},
        {"after": datetime.timedelta(seconds=90), "id": uuid.uuid4(), "label": gettext_lazy("Closed")},
        {"status": Order.Status.FILLED, "side": Position.Status.OPEN, "level": 2, "flag": True, "none": None},
        {"nested": {"levels": (1, 2, [Decimal("1.5"), {"at": timezone.now()}])}, "ratio": 0.25},
        {"by_number": {1: "one", 2.5: "two and a half"}},
        {"ordered": OrderedDict(b=1, a=Decimal("2"))},
    ],
)
def test_jsonable_is_the_json_round_trip(data):
    expected = round_trip(data)

    made = jsonable(data)

    assert made == expected
    assert json.dumps(made) == json.dumps(expected)
    assert [type(value) for value in made.values()] == [type(value) for value in expected.values()]


def test_jsonable_refuses_what_json_cannot_hold():
    with pytest.raises(TypeError):
        jsonable({"thing": object()})
