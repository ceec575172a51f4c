"""Documentation of the webhook payload (version 1) for the OpenAPI schema.

The webhook itself parses with signals_app.payload, which also accepts the legacy TVTelegramBingX form;
these serializers describe the contract for readers of /api/schema/.
"""

from rest_framework import serializers

from signals_app.payload import ACTIONS, SIZE_MODES


class SizeSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=SIZE_MODES)
    value = serializers.DecimalField(max_digits=20, decimal_places=8, help_text="A number or a numeric string.")


class StopLossSerializer(serializers.Serializer):
    price = serializers.DecimalField(max_digits=20, decimal_places=8, required=False)
    pct = serializers.DecimalField(max_digits=20, decimal_places=8, required=False, help_text="% from the entry.")


class TakeProfitSerializer(StopLossSerializer):
    size_pct = serializers.DecimalField(max_digits=6, decimal_places=2, help_text="% of the position closed here.")


class TradingViewAlertSerializer(serializers.Serializer):
    secret = serializers.CharField(required=False, help_text="The account's webhook secret (or use the URL/header).")
    alert_id = serializers.CharField(
        required=False, help_text="Idempotency key, e.g. 'ema|{{ticker}}|{{interval}}|{{time}}' (bar time)."
    )
    sent_at = serializers.CharField(required=False, help_text="{{timenow}}: ISO-8601 or epoch milliseconds.")
    max_lag_s = serializers.IntegerField(required=False, help_text="Reject the alert when older than this.")
    account = serializers.CharField(required=False, help_text="Account name; default: the secret's account.")
    strategy = serializers.CharField(required=False)
    timeframe = serializers.CharField(required=False, help_text="{{interval}}")
    symbol = serializers.CharField(help_text="BTCUSDT, BTCUSDT.P, BINANCE:BTCUSDT.P, BTC-USDT or BTC/USDT:USDT.")
    action = serializers.ChoiceField(choices=ACTIONS, help_text="Also LONG_BUY, LONG_SELL, SHORT_SELL, SHORT_BUY.")
    order_type = serializers.ChoiceField(choices=["market", "limit"], required=False, default="market")
    price = serializers.DecimalField(max_digits=20, decimal_places=8, required=False, help_text="{{close}}")
    size = SizeSerializer(required=False)
    quantity = serializers.DecimalField(max_digits=20, decimal_places=8, required=False, help_text="Base quantity.")
    leverage = serializers.IntegerField(required=False, min_value=1, max_value=125)
    margin_mode = serializers.ChoiceField(choices=["isolated", "cross"], required=False)
    sl = StopLossSerializer(required=False, help_text="Or a bare number: the stop price.")
    tp = TakeProfitSerializer(many=True, required=False, help_text="Up to 6 levels; size_pct adds up to 100 at most.")
    breakeven = serializers.DictField(required=False, help_text='e.g. {"after_tp": 1, "offset_pct": "0.05"}')
    trailing = serializers.DictField(required=False, help_text='e.g. {"activation_pct": "1", "callback_pct": "0.5"}')
    confidence = serializers.DecimalField(max_digits=6, decimal_places=3, required=False, help_text="0-100 or 0-1.")
    comment = serializers.CharField(required=False)


class WebhookSignalSerializer(serializers.Serializer):
    signal_id = serializers.IntegerField()
    status = serializers.CharField()
    duplicate = serializers.BooleanField(required=False)


class WebhookResponseSerializer(WebhookSignalSerializer):
    signals = WebhookSignalSerializer(many=True, required=False, help_text="One per action of an `actions` list.")
    errors = serializers.ListField(child=serializers.CharField(), required=False)
    error = serializers.CharField(required=False)
