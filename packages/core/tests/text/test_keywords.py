from openmemory_core.text.keywords import KeywordParams, document_vector, query_vector, term_index, terms


def test_terms_drop_stopwords_and_fold_plurals() -> None:
    assert terms("I love the mountains and my dog's toys") == ["love", "mountain", "dog", "toy"]


def test_every_form_of_a_word_is_one_term() -> None:
    assert len(set(terms("paint painted painting paints"))) == 1
    assert terms("cities")[0] == terms("city")[0] and terms("camping")[0] == terms("camp")[0]
    assert terms("news")[0] != terms("new")[0]  # a stemmer, not a blind strip of a final s
    paint = term_index(terms("paint")[0])
    assert paint in document_vector("she painted a sunset").indices
    assert query_vector("paint").indices == [paint]


def test_document_vector_weights_repeated_terms_higher() -> None:
    vec = document_vector("tea tea coffee")
    weights = dict(zip(vec.indices, vec.values, strict=True))
    (coffee,) = terms("coffee")
    assert weights[term_index("tea")] > weights[term_index(coffee)] > 0
    assert vec.indices == sorted(vec.indices)


def test_query_vector_is_binary_and_empty_for_stopwords() -> None:
    vec = query_vector("where is my tea tea")
    assert vec.values == [1.0] and vec.indices == [term_index("tea")]
    assert query_vector("what is it").indices == []


def test_context_terms_count_at_a_share_of_the_texts_own() -> None:
    alone = dict(
        zip(*(lambda v: (v.indices, v.values))(document_vector("a sunset over the lake")), strict=True)
    )
    vec = document_vector("a sunset over the lake", context="what did you paint last week")
    weights = dict(zip(vec.indices, vec.values, strict=True))
    assert weights[term_index("sunset")] == alone[term_index("sunset")]  # its own words are unchanged
    assert 0 < weights[term_index("paint")] < weights[term_index("sunset")]
    assert document_vector("tea", context="") == document_vector("tea")


def test_bm25_constants_come_from_the_params() -> None:
    (tea,) = terms("tea")
    shipped = document_vector("tea", "coffee")
    no_context = document_vector("tea", "coffee", KeywordParams(context_share=0.0))
    assert dict(zip(shipped.indices, shipped.values, strict=True))[term_index(terms("coffee")[0])] > 0
    assert dict(zip(no_context.indices, no_context.values, strict=True))[term_index(terms("coffee")[0])] == 0
    long = "tea " + " ".join(f"word{i}" for i in range(30))
    light, heavy = (document_vector(long, None, KeywordParams(b=b)) for b in (0.0, 1.0))
    weight = [dict(zip(v.indices, v.values, strict=True))[term_index(tea)] for v in (light, heavy)]
    assert weight[0] == 1.0 and weight[1] < 1.0  # b 0: no length normalisation
