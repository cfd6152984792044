"""Session fixtures shared by the Wan tests: tiny random checkpoint folders in both layouts."""
from tests.wan.folders import (wan_diffusers_folder, wan_diffusers_folder_other,  # noqa: F401
                               wan_official_folder, wan_official_folder_other)
