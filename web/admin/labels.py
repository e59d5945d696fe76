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
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
