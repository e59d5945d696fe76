"""English labels (message ids) of the codes the admin shows; Russian comes from the catalog."""

STATUS = {
    "pending": "Pending",
    "successful": "Successful",
    "lost": "Lost",
    "unsuccessful": "Unsuccessful",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "notified": "E-mailed, not called",
}
AUTO_TAG = {"unique": "Unique", "repeat": "Repeat", "target": "Target", "nontarget": "Non-target"}
DIRECTION = {"operator_first": "Operator first", "client_first": "Client first"}
CHANNEL = {"direct": "Direct", "organic": "Organic", "ads": "Ads", "referral": "Referral", "social": "Social"}
GRANT = {"view": "View", "edit": "Edit", "full": "Full"}
#: what opened an app's form on the site (the visit's "trigger", sent by the site scripts); others as sent
TRIGGER = {
    "time": "By time",
    "exit": "On exit intent",
    "scroll": "On scroll",
    "hash": "By a HASH link",
    "button": "By the button",
    "hover": "On hover",
}
#: the visit's fields the site scripts send (a lead's ``visit``); other keys are shown as sent
VISIT = {"pages": "Pages viewed", "seconds_on_site": "Seconds on site", "trigger": "Trigger", "rule": "Rule"}
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
