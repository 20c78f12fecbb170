// TODO(foundation): shape rules and kernels of this family.
#include "ops/common.h"

namespace mnn {

void register_linalg_ops() {}

}  // namespace mnn
