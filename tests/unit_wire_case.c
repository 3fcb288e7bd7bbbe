/* unit_wire_case.c: the inference-server wire's two casings. Expected key names are those the
 * npm neuronpedia-inference-client 1.10.1 reads (its models' FromJSON functions). */
#include <stdlib.h>
#include <string.h>

#include "server/wire_case.h"
#include "tests/t.h"

static wire_case of(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    wire_case c = wire_case_of(j);
    json_decref(j);
    return c;
}

TEST(wire_case_of_request_bodies)
{
    CHECK_INT(of("{\"model\":\"m\",\"prompt\":\"p\",\"source\":\"s\",\"index\":\"3\"}"), WIRE_UNKNOWN);
    CHECK_INT(of("{\"model\":\"m\",\"text\":\"t\",\"prepend_bos\":false}"), WIRE_SNAKE);
    CHECK_INT(of("{\"model\":\"m\",\"text\":\"t\",\"prependBos\":false}"), WIRE_CAMEL);
    /* Nested: a steering request's features carry the only multi-word key. */
    CHECK_INT(of("{\"prompt\":\"p\",\"features\":[{\"steering_vector\":null}]}"), WIRE_SNAKE);
    CHECK_INT(of("{\"prompt\":\"p\",\"features\":[{\"steeringVector\":null}]}"), WIRE_CAMEL);
    CHECK_INT(of("{\"numResults\":1,\"ignore_bos\":true}"), WIRE_SNAKE); /* mixed: snake wins */
    CHECK_INT(of("[]"), WIRE_UNKNOWN);
    wire_case c = WIRE_UNKNOWN;
    CHECK_INT(wire_case_parse("snake", &c), 0);
    CHECK_INT(c, WIRE_SNAKE);
    CHECK_INT(wire_case_parse("camel", &c), 0);
    CHECK_INT(c, WIRE_CAMEL);
    CHECK_INT(wire_case_parse("Snake", &c), -1);
}

TEST(wire_snake_keys_renames_every_depth)
{
    json_t *j = json_loads("{\"activation\":{\"values\":[1,2],\"maxValue\":2,\"maxValueIndex\":1,"
                           "\"dfaValues\":[0]},\"tokens\":[\"a\"],\"tokensIsSpecial\":[false],"
                           "\"results\":[{\"tokenPosition\":0,\"topFeatures\":[{\"featureIndex\":3,"
                           "\"activationValue\":0.5}]}],\"hookName\":\"blocks.1.hook_resid_pre\","
                           "\"activeFeatures\":{\"12\":[[0,1.5]]},\"topkDecoderCossimFeatures\":[]}",
                           0, NULL);
    CHECK(j != NULL);
    CHECK(wire_snake_keys(j) == j);
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    CHECK_STR(s, "{\"activation\":{\"dfa_values\":[0],\"max_value\":2,\"max_value_index\":1,\"values\":[1,2]},"
                 "\"activeFeatures\":{\"12\":[[0,1.5]]},\"hookName\":\"blocks.1.hook_resid_pre\","
                 "\"results\":[{\"token_position\":0,\"top_features\":[{\"activation_value\":0.5,"
                 "\"feature_index\":3}]}],\"tokens\":[\"a\"],\"tokens_is_special\":[false],"
                 "\"topk_decoder_cossim_features\":[]}");
    free(s);
    json_decref(j);
}
