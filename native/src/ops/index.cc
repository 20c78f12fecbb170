// TODO(foundation): shape rules and kernels of this family.
#include "ops/common.h"

namespace mnn {

void register_index_ops() {}

}  // namespace mnn
