"""ok: liveness and credentials check (TTP /ok/<unit> <key> -> OK), the vendor's OK app.

This is the OK app from the Data Server App Guide with its import line
changed to texmate_ds.models; tests/fixtures/vendor_ok.py keeps the original.
"""
# -*- coding: utf-8 -*-
# Data Server TTP Interface 'OK' custom TTP extension. #

# DataServer Code listing (similar to HTTP):
# 200: 'OK'
# 201: 'Created'
# 202: 'Accepted'
# 203: 'Partial information'
# 204: 'No response'
# 301: 'Moved'
# 302: 'Found'
# 303: 'Method'
# 304: 'Not modified'
# 400: 'Bad request'
# 401: 'Authorization Required'
# 402: 'Unauthorized'
# 403: 'Forbidden'
# 404: 'Data not found'
# 405: 'Unit not found'
# 406: 'Duplicate sample'
# 500: 'Internal error'
# 501: 'Not implemented'
# 502: 'Service temporarily overloaded'
# 503: 'Gateway timeout'

# Producers are Class objects that have two methods:
# ``__init__`` and ``more``. The init method is given
# the server, request, unit (code) and key for the request.
# more() should return data to be transmitted on the channel.
# The producer indicates exhaustion (i.e. that it contains no more data)
# by having its more() method return the empty string
# Read Documentation on Producers here:
from texmate_ds.models import Unit


class OKProducer:
    """
    This is an example producer, it sends an OK signal back to
    the Unit sending the request if the Unit can be authenticated.
    The syntax of the request sent from the Unit for this producer is:
    ``TTP /ok/unit_code unit_key\r``
    And the response will look like:
    ``OK\r``
    The socket will remain open/closed according to the default
    socket settings in your ``txm.conf`` file.
    """
    def __init__(self, server, request, unit, key):
        # Setup environment here,
        # then call self.process_request()
        # to process the request.
        self.server = server    # TTP Data Server
        self.request = request  # TTP Request string
        self.unit = unit        # Unit code
        self.key = key          # Unit key
        self.done = 0           # Used to mark this channel as ready for pushing
                                # and then closure.
        # More stuff here as required.
        self.process_request()  # Process the request now.
    def process_request(self):
        """
        Process the request, do the stuff, then 
        generate the return result string for
        return with the more() method.
        """
        # Authenticate
        error_code = None # Error code.
        try:
            unit = Unit.objects.get(code=self.unit)
        except Unit.DoesNotExist:
            error_code = 405
        else:
            if not unit.check_key(self.key):
                error_code = 402
        if error_code:
            msg = self.server.responses[error_code]
            self.data = self.server.ERROR_MESSAGE % {'code': error_code, 'message': msg}
            return
        # Passed checks:
        # Do stuff here as required.
        self.data = 'OK\r' # Don't forget the trailing \r to keep the TTP Protocol specification.
    def more(self):
        if self.done:
            return ''
        else:
            self.done = 1
            self.server.bytes_out.increment(len(self.data)) # Keep track of bytes sent.
            return self.data

# Define Extension to be loaded:
Extension = {
    'code': 'ok',           # eg: TTP /ok/unit_code/<The rest of the command> unit_key
    'run_before': None,     # Callable to run before the producer is called.
    'producer': OKProducer, # TTP Producer to run when ``code`` is detected.
    'run_after': None,      # Callable to run after the producer has exited.
}
