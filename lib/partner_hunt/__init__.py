"""partner-hunt: Microsoft's partner-compromise Teams hunt (rule af2b5dbd-4b66-47b4-9936-abfecb246ba1) on Spark + Delta."""

__version__ = "0.1.0"
RULE_ID = "af2b5dbd-4b66-47b4-9936-abfecb246ba1"
RULE_NAME = "Top domains outbound sending Malicious Teams messages inbound"
MITRE_TECHNIQUE = "T1566"
MITRE_TACTIC = "InitialAccess"
