"""aiosmtpd's Maildir handler, refusing some recipients as a real relay would: a local part that
starts with "bounce" is refused for good (550), one that starts with "tempfail" for now (451)."""

from aiosmtpd.handlers import Mailbox


class BouncingMailbox(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split('@', 1)[0].lower()
        if local.startswith('bounce'):
            return '550 5.1.1 <%s>: mailbox unavailable' % address
        if local.startswith('tempfail'):
            return '451 4.3.0 <%s>: try again later' % address
        envelope.rcpt_tos.append(address)
        return '250 OK'


class MessageIds:
    """Counts what arrives instead of keeping it: appends each message's Message-ID to a file, one
    per line, so a benchmark can count messages and duplicates at the receiver."""

    def __init__(self, path):
        self.path = path

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 1:
            parser.error('MessageIds needs the file to append to')
        return cls(args[0])

    async def handle_DATA(self, server, session, envelope):
        message_id = ''
        for line in envelope.content.split(b'\r\n'):
            if not line:
                break
            if line.lower().startswith(b'message-id:'):
                message_id = line.split(b':', 1)[1].strip().decode('ascii', 'replace')
        with open(self.path, 'a') as out:
            out.write(message_id + '\n')
        return '250 OK'
