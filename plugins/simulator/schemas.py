from marshmallow import Schema, ValidationError, fields, validate, validates_schema


class RuleSchema(Schema):
    """How the phone at numbers ending in ``suffix`` behaves on the given leg."""

    leg = fields.String(required=True, validate=validate.OneOf(["operator", "client"]))
    suffix = fields.String(required=True, validate=validate.Regexp(r"^\d{1,15}$", error="Digits only."))
    status = fields.Integer(
        load_default=200,
        validate=validate.Range(min=200, max=699),
        metadata={"help": "the leg's final status when dialled; 200 = answers"},
    )
    presses = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(r"^[0-9*#]*$"),
        metadata={"help": 'keys pressed one by one when asked ("" = never presses)'},
    )
    hangs_up_after = fields.Float(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=0),
        metadata={"help": "simulated seconds after answering"},
    )
    machine = fields.Boolean(load_default=False, metadata={"help": "an answering machine picks up"})

    @validates_schema
    def _answering_only(self, data, **_):
        if data["status"] != 200 and (data["presses"] or data["hangs_up_after"] is not None or data["machine"]):
            raise ValidationError("presses, hangs_up_after and machine need status 200 (the phone answers).")


class SimulatorSettings(Schema):
    ring_seconds = fields.Float(
        load_default=3.0,
        validate=validate.Range(min=0, max=120),
        metadata={"help": "simulated ringing before a leg answers"},
    )
    talk_seconds = fields.Integer(
        load_default=150,
        validate=validate.Range(min=0, max=7200),
        metadata={"help": "simulated conversation when both legs answer"},
    )
    speed = fields.Float(
        load_default=50.0,
        validate=validate.Range(min=1, max=100000),
        metadata={"help": "simulated seconds per real second"},
    )
    operator_presses = fields.String(
        load_default="1",
        validate=validate.Regexp(r"^[0-9*#]*$"),
        metadata={"help": "what operators press when asked, unless a rule says"},
    )
    rules = fields.List(
        fields.Nested(RuleSchema),
        load_default=list,
        metadata={"help": "numbers (by their ending) whose phone behaves otherwise"},
    )
