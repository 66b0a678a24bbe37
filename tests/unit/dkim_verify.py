#!/usr/bin/python3
# dkim_verify.py: verifies a message's DKIM-Signature with python3-dkim (dkimpy), an
# implementation independent of libopendkim, against a key record given on the command line
# instead of DNS. Used by test_dkim.c.
#   dkim_verify.py MESSAGE_FILE SELECTOR._domainkey.DOMAIN 'v=DKIM1; k=rsa; p=...'
# Exit status: 0 valid, 1 invalid, 2 usage or environment error.
import sys

try:
    import dkim
except ImportError:
    print("python3-dkim is not installed", file=sys.stderr)
    sys.exit(2)


def main():
    if len(sys.argv) != 4:
        print("usage: dkim_verify.py MESSAGE_FILE RECORD_NAME KEY_RECORD", file=sys.stderr)
        return 2
    with open(sys.argv[1], "rb") as f:
        message = f.read()
    record_name = sys.argv[2].lower().rstrip(".")
    record = sys.argv[3].encode()

    def dnsfunc(name, timeout=5):
        # The one record the test publishes; any other name does not exist, so a signature
        # naming the wrong d= or s= fails as it would against real DNS.
        if isinstance(name, bytes):
            name = name.decode()
        return record if name.lower().rstrip(".") == record_name else None

    ok = dkim.verify(message, dnsfunc=dnsfunc)
    print("dkimpy: " + ("pass" if ok else "fail"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
