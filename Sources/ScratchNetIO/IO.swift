// placeholder, replaced by the IO helper
import ScratchNet
