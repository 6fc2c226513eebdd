// placeholder
import ScratchNet
import COpenCL
