// TODO(foundation): shape rules and kernels of this family.
#include "ops/common.h"

namespace mnn {

void register_random_ops() {}

}  // namespace mnn
