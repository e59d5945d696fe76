"""SMS: SMS.ru, SMSC and HTTP-gateway providers, the visitor's follow-up and operators' alerts (docs/sms.md)."""
