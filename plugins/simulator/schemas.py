from marshmallow import Schema, fields, validate


class RuleSchema(Schema):
    leg = fields.String(required=True, validate=validate.OneOf(["operator", "client"]))
    suffix = fields.String(required=True, validate=validate.Regexp(r"^\d{1,15}$", error="Digits only."))
    status = fields.Integer(required=True, validate=validate.Range(min=200, max=699))


class SimulatorSettings(Schema):
    ring_seconds = fields.Float(load_default=3.0, validate=validate.Range(min=0, max=120),
                                metadata={"help": "simulated ringing before a leg answers"})
    talk_seconds = fields.Integer(load_default=150, validate=validate.Range(min=0, max=7200),
                                  metadata={"help": "simulated conversation when both legs answer"})
    speed = fields.Float(load_default=50.0, validate=validate.Range(min=1, max=100000),
                         metadata={"help": "simulated seconds per real second"})
    rules = fields.List(fields.Nested(RuleSchema), load_default=list,
                        metadata={"help": "numbers (by their ending) whose leg ends with another status"})
