import warnings

# oslo.utils warns about its eventlet helpers on import; pyct uses threads.
warnings.filterwarnings("ignore", category=DeprecationWarning,
                        module="oslo_utils.eventletutils")
warnings.filterwarnings("ignore", message=".*Eventlet is deprecated.*")
