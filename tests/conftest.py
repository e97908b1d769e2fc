# as in every pyct process: eventlet stays unimportable (pyct_driver.no_eventlet)
from pyct_driver import no_eventlet  # noqa: F401,I100

import warnings

# oslo.utils warns about its eventlet helpers on import; pyct uses threads.
warnings.filterwarnings("ignore", category=DeprecationWarning,
                        module="oslo_utils.eventletutils")
