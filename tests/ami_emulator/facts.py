"""Facts about Asterisk the emulator relies on, as plain data.

Every table names where it comes from (paths are in the asterisk/asterisk
repository, branch ``releases/20``; ``releases/22`` is identical for all of
them).  docs/ami-emulator.md lists the same sources with more context.
"""

from __future__ import annotations

# --- Event classes (include/asterisk/manager.h, EVENT_FLAG_*) -------------------
SYSTEM = 1 << 0
CALL = 1 << 1
LOG = 1 << 2
VERBOSE = 1 << 3
COMMAND = 1 << 4
AGENT = 1 << 5
USER = 1 << 6
CONFIG = 1 << 7
DTMF = 1 << 8
REPORTING = 1 << 9
CDR = 1 << 10
DIALPLAN = 1 << 11
ORIGINATE = 1 << 12
AGI = 1 << 13
CC = 1 << 15
AOC = 1 << 16
TEST = 1 << 17
SECURITY = 1 << 18
MESSAGE = 1 << 30
ALL = 0x7FFFFFFF  # INT_MAX, the "all" alias

# main/manager.c, perms[]: the order Privilege strings are built in ("call,all").
PERMISSION_LABELS: tuple[tuple[int, str], ...] = (
    (SYSTEM, "system"),
    (CALL, "call"),
    (LOG, "log"),
    (VERBOSE, "verbose"),
    (COMMAND, "command"),
    (AGENT, "agent"),
    (USER, "user"),
    (CONFIG, "config"),
    (DTMF, "dtmf"),
    (REPORTING, "reporting"),
    (CDR, "cdr"),
    (DIALPLAN, "dialplan"),
    (ORIGINATE, "originate"),
    (AGI, "agi"),
    (CC, "cc"),
    (AOC, "aoc"),
    (TEST, "test"),
    (SECURITY, "security"),
    (MESSAGE, "message"),
    (ALL, "all"),
)
EVERY_PERMISSION = 0
for _bit, _label in PERMISSION_LABELS:
    EVERY_PERMISSION |= _bit


def permission_mask(text: str) -> int:
    """get_perm() (main/manager.c): a manager.conf ``read =``/``write =`` value as its bit set."""
    mask = 0
    for word in text.split(","):
        mask |= next((bit for bit, label in PERMISSION_LABELS if label == word.strip().lower()), 0)
    return mask


def privilege(category: int) -> str:
    """authority_to_str(): every label whose bit is in ``category``, "all" included."""
    labels = [label for bit, label in PERMISSION_LABELS if category & bit]
    return ",".join(labels) or "<none>"


# --- Words Asterisk reads as booleans (main/utils.c ast_true / ast_false) --------
TRUE_WORDS = frozenset({"yes", "true", "y", "t", "1", "on"})
FALSE_WORDS = frozenset({"no", "false", "n", "f", "0", "off"})


def ast_true(value: str) -> bool:
    return value.lower() in TRUE_WORDS


def ast_false(value: str) -> bool:
    return value.lower() in FALSE_WORDS


# --- AMI protocol versions (include/asterisk/manager.h AMI_VERSION, by release tag)
AMI_VERSION_BY_MAJOR = {16: "5.0.5", 18: "7.0.3", 20: "9.0.0", 21: "10.0.0", 22: "11.0.0", 23: "12.0.0"}

# --- Limits (main/manager.c, include/asterisk/manager.h, include/asterisk/channel.h)
INBUF_MAX = 1024  # sizeof(mansession_session.inbuf) - 1: longest line incl. its CRLF
MAX_HEADERS = 128  # AST_MAX_MANHEADERS
MAX_PUBLIC_UNIQUEID = 149  # AST_MAX_PUBLIC_UNIQUEID (Originate ChannelId/OtherChannelId)
DEFAULT_AUTH_TIMEOUT = 30  # manager.conf authtimeout default
DEFAULT_AUTH_LIMIT = 50  # manager.conf authlimit default
DEFAULT_ORIGINATE_TIMEOUT_MS = 30000  # action_originate: int to = 30000

# --- Channel states (include/asterisk/channelstate.h, main/channel.c ast_state2str)
STATE_DOWN, STATE_RSRVD, STATE_OFFHOOK, STATE_DIALING, STATE_RING, STATE_RINGING, STATE_UP = range(7)
STATE_TEXT = {
    0: "Down",
    1: "Rsrvd",
    2: "OffHook",
    3: "Dialing",
    4: "Ring",
    5: "Ringing",
    6: "Up",
    7: "Busy",
    8: "Dialing Offhook",
    9: "Pre-ring",
}

# --- OriginateResponse Reason = enum ast_control_frame_type (include/asterisk/frame.h)
REASON_FAILED = 0  # no AST_CONTROL_* value: "could not be reached"
REASON_HANGUP = 1  # AST_CONTROL_HANGUP
REASON_RINGING = 3  # AST_CONTROL_RINGING (timeout / no answer)
REASON_ANSWERED = 4  # AST_CONTROL_ANSWER
REASON_BUSY = 5  # AST_CONTROL_BUSY
REASON_CONGESTION = 8  # AST_CONTROL_CONGESTION

# --- Hangup causes (include/asterisk/causes.h; texts: main/channel.c causes[]) ---
CAUSE_NOT_DEFINED = 0
CAUSE_UNALLOCATED = 1
CAUSE_NO_ROUTE_DESTINATION = 3
CAUSE_NORMAL_CLEARING = 16
CAUSE_USER_BUSY = 17
CAUSE_NO_USER_RESPONSE = 18
CAUSE_NO_ANSWER = 19
CAUSE_SUBSCRIBER_ABSENT = 20
CAUSE_CALL_REJECTED = 21
CAUSE_ANSWERED_ELSEWHERE = 26
CAUSE_DESTINATION_OUT_OF_ORDER = 27
CAUSE_NORMAL_CIRCUIT_CONGESTION = 34
CAUSE_NETWORK_OUT_OF_ORDER = 38
CAUSE_NORMAL_TEMPORARY_FAILURE = 41
CAUSE_SWITCH_CONGESTION = 42
CAUSE_CHAN_NOT_IMPLEMENTED = 66
CAUSE_CHANNEL_UNACCEPTABLE = 6
CAUSE_INTERWORKING = 127

CAUSE_TEXT = {
    1: "Unallocated (unassigned) number",
    2: "No route to specified transmit network",
    3: "No route to destination",
    5: "Misdialed trunk prefix",
    6: "Channel unacceptable",
    7: "Call awarded and being delivered in an established channel",
    8: "Pre-empted",
    14: "Number ported elsewhere",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    20: "Subscriber absent",
    21: "Call Rejected",
    22: "Number changed",
    23: "Redirected to new destination",
    26: "Answered elsewhere",
    27: "Destination out of order",
    28: "Invalid number format",
    29: "Facility rejected",
    30: "Response to STATus ENQuiry",
    31: "Normal, unspecified",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    41: "Temporary failure",
    42: "Switching equipment congestion",
    43: "Access information discarded",
    44: "Requested channel not available",
    50: "Facility not subscribed",
    52: "Outgoing call barred",
    54: "Incoming call barred",
    57: "Bearer capability not authorized",
    58: "Bearer capability not available",
    65: "Bearer capability not implemented",
    66: "Channel not implemented",
    69: "Facility not implemented",
    81: "Invalid call reference value",
    88: "Incompatible destination",
    95: "Invalid message unspecified",
    96: "Mandatory information element is missing",
    97: "Message type nonexist.",
    98: "Wrong message",
    99: "Info. element nonexist or not implemented",
    100: "Invalid information element contents",
    101: "Message not compatible with call state",
    102: "Recover on timer expiry",
    103: "Mandatory IE length error",
    111: "Protocol error, unspecified",
    127: "Interworking, unspecified",
}


def cause_text(cause: int) -> str:
    """ast_cause2str(): unknown numbers (0 included) read "Unknown"."""
    return CAUSE_TEXT.get(cause, "Unknown")


# --- SIP final response -> Q.850 cause (res/res_pjsip.c ast_sip_hangup_sip2cause)
SIP_TO_CAUSE = {
    302: 23,
    401: 21,
    403: 21,
    404: 1,
    405: 127,
    407: 21,
    408: 18,
    409: 41,
    410: 22,
    411: 127,
    413: 127,
    414: 127,
    415: 127,
    420: 3,
    480: 19,
    481: 127,
    482: 127,
    483: 19,
    484: 28,
    485: 1,
    486: 17,
    487: 127,
    488: 58,
    491: 127,
    493: 127,
    500: 38,
    501: 29,
    502: 27,
    503: 34,
    504: 102,
    505: 127,
    600: 17,
    603: 21,
    604: 1,
    606: 58,
}


def sip_to_cause(code: int) -> int:
    if code in SIP_TO_CAUSE:
        return SIP_TO_CAUSE[code]
    if 400 <= code < 500:
        return CAUSE_INTERWORKING
    if 500 <= code < 600:
        return CAUSE_NORMAL_CIRCUIT_CONGESTION
    if 600 <= code < 700:
        return CAUSE_INTERWORKING
    return CAUSE_NORMAL_CLEARING


def dial_status_for_cause(cause: int) -> str:
    """main/dial.c ast_hangup_cause_to_dial_status(): DialEnd's status when the leg hangs up."""
    if cause == CAUSE_USER_BUSY:
        return "BUSY"
    if cause == CAUSE_NORMAL_CIRCUIT_CONGESTION:
        return "CONGESTION"
    if cause in (CAUSE_NO_ROUTE_DESTINATION, CAUSE_SUBSCRIBER_ABSENT):
        return "CHANUNAVAIL"
    return "NOANSWER"


def reason_for_dial_cause(cause: int) -> int:
    """main/pbx.c pbx_dial_reason() for an unanswered dial: the dial channel's cause -> Reason."""
    if cause == CAUSE_USER_BUSY:
        return REASON_BUSY
    if cause in (
        CAUSE_CALL_REJECTED,
        CAUSE_NETWORK_OUT_OF_ORDER,
        CAUSE_DESTINATION_OUT_OF_ORDER,
        CAUSE_NORMAL_TEMPORARY_FAILURE,
        CAUSE_SWITCH_CONGESTION,
        CAUSE_NORMAL_CIRCUIT_CONGESTION,
    ):
        return REASON_CONGESTION
    if cause in (CAUSE_ANSWERED_ELSEWHERE, CAUSE_NO_ANSWER):
        return REASON_RINGING
    return REASON_FAILED


def chan_sip_control(code: int) -> str | None:
    """channels/chan_sip.c (releases/18) handle_response() / handle_response_invite(): the
    control frame a final INVITE response becomes, if any.  480 (handle_response_invite) and
    486/600/603 and 3xx (generic branch) queue BUSY; 410/482/500/502/503/504 (generic branch)
    queue CONGESTION; everything else (400, 404, 408, 484, 487, 488, 501 ...) only queues a
    hangup with a cause, which leaves OriginateResponse Reason 0."""
    if code in (300, 301, 302, 305, 480, 486, 600, 603):
        return "BUSY"
    if code in (410, 482, 500, 502, 503, 504):
        return "CONGESTION"
    return None


# --- Applications Originate refuses without the "system" write permission
# (main/manager.c originate_app_permissions[]; app names match case-insensitively anywhere)
ORIGINATE_APPS_NEEDING_SYSTEM = (
    "agi",
    "dbdeltree",
    "exec",
    "externalivr",
    "mixmonitor",
    "originate",
    "reload",
    "system",
)
ORIGINATE_DATA_NEEDING_SYSTEM = ("CURL", "DB", "EVAL", "FILE", "ODBC", "REALTIME", "SHELL")
# ^ dialplan function names, matched case-sensitively anywhere in Data (appdata_match)

# --- AMD() results (apps/app_amd.c): AMDSTATUS values
AMD_STATUSES = ("MACHINE", "HUMAN", "NOTSURE", "HANGUP")

DTMF_DIGITS = frozenset("0123456789ABCDabcd*#")


def escape_c(value: str) -> str:
    """main/utils.c ast_escape_c(): what AMI does to caller names and VarSet values."""
    table = {
        "\a": "\\a",
        "\b": "\\b",
        "\f": "\\f",
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
        "\v": "\\v",
        "\\": "\\\\",
        "'": "\\'",
        '"': '\\"',
        "?": "\\?",
    }
    return "".join(table.get(ch, ch) for ch in value)
